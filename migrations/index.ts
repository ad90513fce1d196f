import { CreateOtpRequests1795300000000 } from './1795300000000-CreateOtpRequests.js';
import { AddOtpDestinations1795300000001 } from './1795300000001-AddOtpDestinations.js';
import { AddPolicyIndexes1795300000002 } from './1795300000002-AddPolicyIndexes.js';
import { AddDeliveredBy1795300000003 } from './1795300000003-AddDeliveredBy.js';
import { AddPurposePolicy1795300000004 } from './1795300000004-AddPurposePolicy.js';
import { AddSubjectIndex1795300000005 } from './1795300000005-AddSubjectIndex.js';
import { AddDeliveryReceipts1795300000006 } from './1795300000006-AddDeliveryReceipts.js';
import { ValidateOtpChannelPush1795300000007 } from './1795300000007-ValidateOtpChannelPush.js';
import {
  CHECK_DOMAINS,
  MoveChecksToDomains1795300000008,
} from './1795300000008-MoveChecksToDomains.js';
import { MergeOtpRequestsChecks1795300000009 } from './1795300000009-MergeOtpRequestsChecks.js';
import { IndexLiveFlows1795300000010 } from './1795300000010-IndexLiveFlows.js';
import { PartitionOtpRequests1795300000000 } from './1795300000000-PartitionOtpRequests.js';

/** Every migration of the module, in order: add them to the host DataSource's `migrations`. */
export const otpMigrations = [
  CreateOtpRequests1795300000000,
  AddOtpDestinations1795300000001,
  AddPolicyIndexes1795300000002,
  AddDeliveredBy1795300000003,
  AddPurposePolicy1795300000004,
  AddSubjectIndex1795300000005,
  AddDeliveryReceipts1795300000006,
  ValidateOtpChannelPush1795300000007,
  MoveChecksToDomains1795300000008,
  MergeOtpRequestsChecks1795300000009,
  IndexLiveFlows1795300000010,
];

/**
 * The opt-in partitioned layout (docs/scaling.md): `otpMigrations` with `PartitionOtpRequests` right
 * after `CreateOtpRequests` (same timestamp), so otp_requests is partitioned by day before any later
 * migration runs, and every later one applies to it. Use this list instead of `otpMigrations` on a
 * new database; running `otpMigrations` later on that database (e.g. `OtpModule`'s `migrationsRun`)
 * is fine: it holds nothing this list has not run.
 */
export const otpPartitionedMigrations = otpMigrations.flatMap((migration) =>
  migration === CreateOtpRequests1795300000000
    ? [migration, PartitionOtpRequests1795300000000]
    : [migration],
);

/**
 * Tables and indexes that exist once every migration above ran; the module checks them (and
 * `OTP_SCHEMA_COLUMNS`, `OTP_SCHEMA_TYPES`) at start. Add the newest migration's objects here with each new migration.
 * A unique index `…_uq` is also found as `…_idx`, its name on the partitioned layout.
 */
export const OTP_SCHEMA_RELATIONS: readonly string[] = [
  'otp_requests',
  'otp_destinations',
  'otp_requests_destination_exhausted_at_idx',
  'otp_requests_destination_purpose_verified_at_idx',
  'otp_requests_subject_created_at_idx',
  'otp_deliveries',
  'otp_deliveries_provider_message_uq',
  'otp_fallbacks',
  'otp_fallbacks_due_at_idx',
  'otp_requests_live_flow_uq',
];

/** Columns, as `table.column`, added by migrations that create no table or index. */
export const OTP_SCHEMA_COLUMNS: readonly string[] = [
  'otp_requests.delivered_by',
  'otp_requests.delivered_to',
  'otp_requests.cancelled_at',
  'otp_requests.subject',
  'otp_requests.token_client_hash',
  'otp_destinations.hard_locked_at',
  'otp_destinations.unlocked_at',
];

/** Types (domains) added by migrations, by name. */
export const OTP_SCHEMA_TYPES: readonly string[] = CHECK_DOMAINS;
