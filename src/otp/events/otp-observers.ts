import { Injectable, Logger, type OnModuleInit, type Type } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { type OtpEventEmitter, OtpEventsObserver } from './otp-events.observer.js';
import {
  OTP_OBSERVER,
  type OtpDeliveryObservation,
  type OtpObserver,
  type OtpSendObservation,
  type OtpVerifyObservation,
} from './otp-observer.js';

/**
 * The one thing the flows call: fans each observation out to the observers the app has, once it
 * is initialized. Those are the event bus, when the host has `@nestjs/event-emitter` and imported
 * `EventEmitterModule` (loaded here, at start, only if installed: it is an optional peer), and any
 * provider under `OTP_OBSERVER` (`nest-otp/metrics`). An observer that throws is logged and
 * skipped: reporting never changes a flow's answer.
 */
@Injectable()
export class OtpObservers implements OnModuleInit {
  private readonly logger = new Logger('OtpModule');
  private observers: OtpObserver[] = [];

  constructor(private readonly moduleRef: ModuleRef) {}

  async onModuleInit(): Promise<void> {
    const emitter = await this.findEventEmitter();
    this.observers = [
      ...(emitter ? [new OtpEventsObserver(emitter)] : []),
      ...this.findRegistered(),
    ];
  }

  /** True when some observer wants the channel of verify observations (costs a query). */
  get needsVerifyChannel(): boolean {
    return this.observers.some((o) => o.needsVerifyChannel === true);
  }

  /** True when anyone listens: the flows skip building observations otherwise. */
  get active(): boolean {
    return this.observers.length > 0;
  }

  sendFinished(observation: OtpSendObservation): void {
    for (const o of this.observers) this.guard(o, () => o.sendFinished?.(observation));
  }

  verifyFinished(observation: OtpVerifyObservation): void {
    for (const o of this.observers) this.guard(o, () => o.verifyFinished?.(observation));
  }

  deliveryAttempted(observation: OtpDeliveryObservation): void {
    for (const o of this.observers) this.guard(o, () => o.deliveryAttempted?.(observation));
  }

  private guard(observer: OtpObserver, report: () => void): void {
    try {
      report();
    } catch (error) {
      // A host listener that throws (EventEmitter2 rethrows synchronously) is the host's bug.
      this.logger.warn(
        `${observer.constructor.name} failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  private async findEventEmitter(): Promise<OtpEventEmitter | null> {
    let token: Type;
    try {
      // A variable, so bundlers do not insist on resolving an optional package at build time.
      const name = '@nestjs/event-emitter';
      token = ((await import(name)) as { EventEmitter2: Type }).EventEmitter2;
    } catch {
      return null; // Not installed: events are optional.
    }
    try {
      const emitter: unknown = this.moduleRef.get(token, { strict: false });
      return isEmitter(emitter) ? emitter : null;
    } catch {
      return null; // Installed, but the host did not import EventEmitterModule.
    }
  }

  private findRegistered(): OtpObserver[] {
    try {
      return this.moduleRef.get<OtpObserver>(OTP_OBSERVER, { strict: false, each: true });
    } catch {
      return [];
    }
  }
}

function isEmitter(value: unknown): value is OtpEventEmitter {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { emit?: unknown }).emit === 'function'
  );
}
