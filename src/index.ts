export { OtpModule } from './otp/otp.module.js';
export {
  OTP_FOR_ROOT_ASYNC_OPTIONS,
  OTP_FOR_ROOT_OPTIONS,
  type OtpModuleExtras,
} from './otp/otp.module-definition.js';
export {
  OtpModuleOptions,
  resolveOtpOptions,
  type OtpModuleOptionsInput,
  type RefusableNumberType,
  type SubjectLimits,
} from './otp/otp.options.js';
export {
  PURPOSE_PRESETS,
  type ClientBinding,
  type HardLockoutPolicy,
  type PurposePolicy,
  type PurposePolicyInput,
  type PurposePresetName,
} from './otp/policy/purpose-policy.js';
export type {
  ChallengeContext,
  ChallengeOptions,
  ChallengeVerifier,
} from './otp/challenge/challenge-verifier.js';
export {
  OTP_HASHER,
  OTP_OPTIONS,
  OTP_PROVIDERS,
  OTP_THROTTLER_OPTIONS,
  OTP_THROTTLER_STORAGE,
  OTP_TOKEN_HEADER,
} from './otp/otp.constants.js';
export {
  OtpService,
  type OtpClient,
  type OtpDeliveryView,
  type OtpRequestView,
  type OtpVerification,
  type SendOtpInput,
  type SendOtpResult,
  type VerifyOtpInput,
  type VerifyOtpResult,
} from './otp/otp.service.js';
export { OtpController, createOtpController } from './otp/otp.controller.js';
export { RequireOtp } from './otp/guards/require-otp.decorator.js';
export { OtpTokenGuard, type OtpVerifiedRequest } from './otp/guards/otp-token.guard.js';
export { OtpThrottlerGuard } from './otp/throttler/otp-throttler.guard.js';
export {
  RedisThrottlerStorage,
  type RedisEvalClient,
  type RedisThrottlerStorageOptions,
} from './otp/throttler/redis-throttler.storage.js';
export { OtpExceptionFilter } from './otp/errors/otp-exception.filter.js';
export { SendOtpDto, SendOtpInputDto } from './otp/dto/send-otp.dto.js';
export { VerifyOtpDto, VerifyOtpInputDto } from './otp/dto/verify-otp.dto.js';
export * from './otp/errors/otp.errors.js';
export type {
  OtpDeliveryAccepted,
  OtpMessage,
  OtpProvider,
} from './otp/delivery/otp-provider.interface.js';
export { OtpFallbackService } from './otp/delivery/receipts/otp-fallback.service.js';
export type { DeliveryReceiptsOptions } from './otp/delivery/receipts/delivery-receipts.options.js';
export type {
  DeliveryCause,
  DeliveryReceiptStatus,
} from './otp/delivery/receipts/otp-delivery-log.repository.js';
export { ConsoleOtpProvider } from './otp/delivery/console.provider.js';
export {
  WebhookOtpProvider,
  type WebhookOtpProviderOptions,
} from './otp/delivery/webhook.provider.js';
export {
  TwilioOtpProvider,
  type TwilioOtpProviderOptions,
} from './otp/delivery/twilio.provider.js';
export {
  SmtpOtpProvider,
  type SmtpMail,
  type SmtpOtpProviderOptions,
  type SmtpTransport,
} from './otp/delivery/smtp.provider.js';
export {
  OTP_WEBHOOK_SIGNATURE_HEADER,
  checkOtpWebhookSignature,
  signOtpWebhookPayload,
  verifyOtpWebhookSignature,
  type OtpWebhookSignatureCheck,
} from './otp/delivery/webhook-signature.js';
export {
  ENGLISH_MESSAGES,
  composeOtpMessage,
  formatOtpMessage,
  type OtpLocaleMessages,
  type OtpMessageTemplates,
} from './otp/delivery/otp-message.js';
export type { CodeHasher } from './otp/crypto/code-hasher.js';
export { BcryptCodeHasher, HmacCodeHasher } from './otp/crypto/code-hasher.js';
export { OtpRequest } from './otp/persistence/otp-request.entity.js';
export { otpMigrations } from '../migrations/index.js';
export type { DeliveryStatus, OtpChannel, OtpRequestStatus } from './otp/otp.types.js';
export {
  purgeOtpRequests,
  type PurgeOptions,
  type PurgeResult,
} from './otp/retention/otp-retention.js';
export {
  OTP_EVENTS,
  type OtpDeliveryFailedEventPayload,
  type OtpEventName,
  type OtpEventPayload,
  type OtpEventPayloads,
  type OtpExhaustedEventPayload,
  type OtpFailedEventPayload,
  type OtpLockedEventPayload,
} from './otp/events/otp-events.js';
