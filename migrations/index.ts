import { CreateOtpRequests1795300000000 } from './1795300000000-CreateOtpRequests.js';

/** Every migration of the module, in order: add them to the host DataSource's `migrations`. */
export const otpMigrations = [CreateOtpRequests1795300000000];
