import { CreateOtpRequests1795300000000 } from './1795300000000-CreateOtpRequests.js';
import { AddOtpDestinations1795300000001 } from './1795300000001-AddOtpDestinations.js';
import { AddPolicyIndexes1795300000002 } from './1795300000002-AddPolicyIndexes.js';

/** Every migration of the module, in order: add them to the host DataSource's `migrations`. */
export const otpMigrations = [
  CreateOtpRequests1795300000000,
  AddOtpDestinations1795300000001,
  AddPolicyIndexes1795300000002,
];

/**
 * Tables and indexes that exist once every migration above ran; the module checks them at start.
 * Add the newest migration's objects here with each new migration.
 */
export const OTP_SCHEMA_RELATIONS: readonly string[] = [
  'otp_requests',
  'otp_destinations',
  'otp_requests_destination_exhausted_at_idx',
  'otp_requests_destination_purpose_verified_at_idx',
];
