/** `nest-otp/testing`: what a host's own tests import. */
export { InMemoryOtpProvider } from './in-memory-otp.provider.js';
