type TwilioSdk = typeof import('twilio');

let loading: Promise<TwilioSdk> | undefined;

/** Loads the optional peer `twilio` once, on the first receipt. */
function loadTwilio(): Promise<TwilioSdk> {
  loading ??= import('twilio').then(
    (module) => module.default,
    (error: unknown) => {
      loading = undefined;
      throw new Error(
        `deliveryReceipts.twilio needs the optional peer dependency 'twilio': run \`npm install twilio\` (${(error as Error).message.split('\n')[0]})`,
      );
    },
  );
  return loading;
}

/**
 * Whether `signature` (the request's `X-Twilio-Signature`) is Twilio's signature of a POST to `url`
 * with form `params`, under `authToken`: the twilio package's own `validateRequest` (HMAC-SHA1 of
 * the URL and the sorted parameters, compared in constant time).
 */
export async function validTwilioSignature(
  authToken: string,
  signature: string,
  url: string,
  params: Record<string, string>,
): Promise<boolean> {
  const twilio = await loadTwilio();
  return twilio.validateRequest(authToken, signature, url, params);
}

/** Loads `twilio` now, so a missing package stops the app at start instead of failing receipts. */
export async function twilioSignatureReady(): Promise<void> {
  await loadTwilio();
}
