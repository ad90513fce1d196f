import { ConfigurableModuleBuilder } from '@nestjs/common';
import { createDeliveryStatusController } from './delivery/receipts/delivery-status.controller.js';
import { OTP_ROUTE_PREFIX } from './otp.constants.js';
import { createOtpController } from './otp.controller.js';
import type { OtpModuleOptionsInput } from './otp.options.js';

/** Options that shape the module itself, so they are given beside (not inside) the factory. */
export interface OtpModuleExtras {
  /** Route prefix of the mounted controller. Default `'otp'`. */
  routePrefix: string;
  /** Mount the OTP routes; `false` to use `OtpService` alone. Default `true`. */
  controller: boolean;
  /** Register the module globally, so `@RequireOtp` works in every module. Default `true`. */
  isGlobal: boolean;
}

/** Internal: the mounted controller class, or null with `controller: false`. */
export const OTP_CONTROLLER = Symbol('OTP_CONTROLLER');

export const OTP_MODULE_EXTRAS_DEFAULTS: OtpModuleExtras = {
  routePrefix: 'otp',
  controller: true,
  isGlobal: true,
};

export const {
  ConfigurableModuleClass: OtpConfigurableModule,
  MODULE_OPTIONS_TOKEN: OTP_MODULE_INPUT,
  OPTIONS_TYPE: OTP_FOR_ROOT_OPTIONS,
  ASYNC_OPTIONS_TYPE: OTP_FOR_ROOT_ASYNC_OPTIONS,
} = new ConfigurableModuleBuilder<OtpModuleOptionsInput>({ moduleName: 'Otp' })
  .setClassMethodName('forRoot')
  .setExtras<OtpModuleExtras>(OTP_MODULE_EXTRAS_DEFAULTS, (definition, extras) => {
    const controller = extras.controller ? createOtpController(extras.routePrefix) : null;
    return {
      ...definition,
      global: extras.isGlobal,
      // The delivery-receipt routes answer 404 unless `deliveryReceipts` configures them.
      controllers: controller
        ? [controller, createDeliveryStatusController(extras.routePrefix)]
        : [],
      providers: [
        ...(definition.providers ?? []),
        { provide: OTP_CONTROLLER, useValue: controller },
        { provide: OTP_ROUTE_PREFIX, useValue: controller ? extras.routePrefix : null },
      ],
    };
  })
  .build();
