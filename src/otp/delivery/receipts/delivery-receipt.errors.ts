import { HttpStatus } from '@nestjs/common';
import { OtpError } from '../../errors/otp.errors.js';

/** A delivery receipt without a valid signature: nothing changes. */
export class ReceiptSignatureInvalidError extends OtpError {
  constructor() {
    super(
      HttpStatus.FORBIDDEN,
      'OTP_RECEIPT_FORBIDDEN',
      'The delivery receipt is not signed with the configured credentials.',
    );
  }
}

/** A receipt route that is not configured: answered like a route that does not exist. */
export class ReceiptRouteNotFoundError extends OtpError {
  constructor() {
    super(HttpStatus.NOT_FOUND, 'NOT_FOUND', 'No such route.');
  }
}
