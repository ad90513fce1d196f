/** Injection token of the resolved `OtpModuleOptions` (public: inject it to read the settings). */
export const OTP_OPTIONS = Symbol('OTP_OPTIONS');
/** Injection token of the list of delivery providers in use. */
export const OTP_PROVIDERS = Symbol('OTP_PROVIDERS');
/** Injection token of the code hasher in use. */
export const OTP_HASHER = Symbol('OTP_HASHER');
/** Internal: the DataSource holding `otp_requests`. */
export const OTP_DATA_SOURCE = Symbol('OTP_DATA_SOURCE');
/** Metadata key set by `@RequireOtp()`. */
export const REQUIRE_OTP_METADATA = 'nest-otp:require-otp';
/** Header carrying a verification token to a guarded route. */
export const OTP_TOKEN_HEADER = 'x-otp-token';
/**
 * The cookie a verify sets with `tokenTransport` `'cookie'` or `'both'`. `__Host-`: the browser keeps
 * it only when set `Secure`, from the host itself, with `Path=/`, so no subdomain can plant or
 * overwrite it.
 */
export const OTP_TOKEN_COOKIE = '__Host-otp-token';
/** Internal: the mounted controller's route prefix, or null when no controller is mounted. */
export const OTP_ROUTE_PREFIX = Symbol('OTP_ROUTE_PREFIX');
/** Injection tokens of the OTP routes' own throttler (apart from any the host configures). */
export const OTP_THROTTLER_OPTIONS = Symbol('OTP_THROTTLER_OPTIONS');
export const OTP_THROTTLER_STORAGE = Symbol('OTP_THROTTLER_STORAGE');
