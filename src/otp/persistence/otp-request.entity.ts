import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { DeliveryStatus, OtpChannel } from '../otp.types.js';

/**
 * One row per send. Every policy decision (expiry, attempts, cooldowns, caps, lockout) is derived
 * from these rows, so instances sharing the database share one policy. The schema is owned by the
 * migrations in `migrations/`; this class mirrors it for TypeORM and for readers.
 */
@Entity({ name: 'otp_requests' })
@Index('otp_requests_destination_created_at_idx', ['destination', 'createdAt'])
export class OtpRequest {
  @PrimaryColumn('uuid')
  id!: string;

  /** Normalized: E.164 phone or lowercased email. */
  @Column('varchar', { length: 254 })
  destination!: string;

  @Column('varchar', { length: 64 })
  purpose!: string;

  /** The channel that carried (or tried to carry) the code last. */
  @Column('varchar', { length: 8 })
  channel!: OtpChannel;

  /** Hash of the code; nulled as soon as the code can no longer verify. */
  @Column('varchar', { name: 'code_hash', length: 100, nullable: true })
  codeHash!: string | null;

  @Column('smallint', { name: 'code_length' })
  codeLength!: number;

  @Column('smallint', { name: 'max_attempts' })
  maxAttempts!: number;

  @Column('smallint', { name: 'attempts_used', default: 0 })
  attemptsUsed!: number;

  @Column('timestamptz', { name: 'created_at' })
  createdAt!: Date;

  @Column('timestamptz', { name: 'expires_at' })
  expiresAt!: Date;

  /** When the next send of this flow was allowed, as answered to the send (replayed as is). */
  @Column('timestamptz', { name: 'resend_available_at' })
  resendAvailableAt!: Date;

  @Column('varchar', { name: 'delivery_status', length: 8, default: 'pending' })
  deliveryStatus!: DeliveryStatus;

  @Column('timestamptz', { name: 'delivered_at', nullable: true })
  deliveredAt!: Date | null;

  /** The provider that carried the code (its `name`). */
  @Column('varchar', { name: 'delivered_by', length: 64, nullable: true })
  deliveredBy!: string | null;

  /** Where the code went when not to the destination: the account's fallback email. */
  @Column('varchar', { name: 'delivered_to', length: 254, nullable: true })
  deliveredTo!: string | null;

  @Column('timestamptz', { name: 'verified_at', nullable: true })
  verifiedAt!: Date | null;

  @Column('timestamptz', { name: 'exhausted_at', nullable: true })
  exhaustedAt!: Date | null;

  @Column('timestamptz', { name: 'superseded_at', nullable: true })
  supersededAt!: Date | null;

  @Column('varchar', { name: 'idempotency_key', length: 255, nullable: true })
  idempotencyKey!: string | null;

  /** SHA-256 of the normalized request body the idempotency key was first used with. */
  @Column('char', { name: 'request_fingerprint', length: 64, nullable: true })
  requestFingerprint!: string | null;

  /** SHA-256 of the verification token issued by a successful verify. */
  @Column('char', { name: 'token_hash', length: 64, nullable: true })
  tokenHash!: string | null;

  @Column('timestamptz', { name: 'token_expires_at', nullable: true })
  tokenExpiresAt!: Date | null;

  @Column('timestamptz', { name: 'token_used_at', nullable: true })
  tokenUsedAt!: Date | null;

  /** When the request was cancelled (it is then also superseded). */
  @Column('timestamptz', { name: 'cancelled_at', nullable: true })
  cancelledAt!: Date | null;

  /** The host's account id the send was made for (per-account limits), if any. */
  @Column('text', { nullable: true })
  subject!: string | null;

  /** SHA-256 of the client a verification token is bound to, when its purpose binds tokens. */
  @Column('text', { name: 'token_client_hash', nullable: true })
  tokenClientHash!: string | null;
}
