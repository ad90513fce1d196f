/** `nest-otp/health`: the `@nestjs/terminus` indicator (an optional peer, loaded only from here). */
export { OtpHealthIndicator, type OtpHealthCheckOptions } from './otp.health-indicator.js';
