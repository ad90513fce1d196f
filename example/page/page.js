// The example's verification page: plain JavaScript, no build step, no framework. It speaks the
// HTTP contract (docs/http-contract.md): POST /otp/send, POST /otp/verify, then the guarded
// POST /example/protected with the verification token.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const ui = {
    sendForm: $('send-form'),
    destination: $('destination'),
    send: $('send'),
    verifyForm: $('verify-form'),
    verifyActions: $('verify-actions'),
    masked: $('masked'),
    code: $('code'),
    expiry: $('expiry'),
    verify: $('verify'),
    resend: $('resend'),
    fallback: $('fallback'),
    change: $('change'),
    done: $('done'),
    doneTitle: $('done-title'),
    answer: $('answer'),
    restart: $('restart'),
    message: $('message'),
  };

  const CHANNEL_WORDS = { email: 'by email', sms: 'by text message', voice: 'by phone call' };
  const FALLBACK_LABELS = { voice: 'Call me instead', sms: 'Text me instead', email: 'Email me' };

  const state = {
    destination: '',
    /** The channel asked for (undefined: the server's default for the destination). */
    requested: undefined,
    channel: undefined,
    codeLength: 6,
    expiresAt: 0,
    resendAt: 0,
    fallbackChannel: undefined,
    /** Server clock minus ours, when they differ by more than the Date header's 1 s grain. */
    skew: 0,
    busy: false,
    /** No code to enter: `'expired'`, or `'exhausted'` (attempts used up); else false. */
    closed: false,
  };
  let ticker;
  let webOtp;

  // ---------------------------------------------------------------------------------------------
  // Small helpers.

  const now = () => Date.now() + state.skew;
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
  /** A code as typed or pasted: spaces and dashes (and anything else not a digit) dropped. */
  const digitsOf = (text) => String(text).replace(/\D/g, '');

  /** "in 45 seconds (at 14:05)": how long, and the time on the user's own clock. */
  function waitText(seconds) {
    const s = Math.max(1, Math.ceil(Number(seconds) || 1));
    const length =
      s < 60
        ? plural(s, 'second')
        : s < 3600
          ? plural(Math.ceil(s / 60), 'minute')
          : plural(Math.ceil(s / 3600), 'hour');
    const at = new Date(Date.now() + s * 1000).toLocaleTimeString([], {
      hour: '2-digit',
      minute: '2-digit',
    });
    return `in ${length} (at ${at})`;
  }

  function say(text, kind) {
    ui.message.textContent = text;
    ui.message.className = `message${kind ? ` ${kind}` : ''}`;
  }

  function setBusy(busy) {
    state.busy = busy;
    ui.send.disabled = busy;
    ui.verify.disabled = busy || state.closed !== false;
    ui.code.readOnly = busy;
    ui.sendForm.setAttribute('aria-busy', String(busy));
    ui.verifyForm.setAttribute('aria-busy', String(busy));
    tick();
  }

  async function post(path, body, headers) {
    try {
      const response = await fetch(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      const data = await response.json().catch(() => ({}));
      return { status: response.status, body: data || {}, date: response.headers.get('date') };
    } catch {
      return { status: 0, body: {} };
    }
  }

  function show(step) {
    ui.sendForm.hidden = step !== 'send';
    ui.verifyForm.hidden = step !== 'verify';
    ui.verifyActions.hidden = step !== 'verify';
    ui.done.hidden = step !== 'done';
  }

  // ---------------------------------------------------------------------------------------------
  // Timers: the code's expiry, and when a new code may be asked for.

  function tick() {
    const t = now();
    if (!ui.verifyForm.hidden && !state.closed && !state.busy && t >= state.expiresAt) {
      closeCode('expired');
      say('This code has expired. Ask for a new code.', 'error');
      focusNext();
    }
    if (state.closed) {
      ui.expiry.textContent =
        state.closed === 'expired' ? 'The code has expired.' : 'No attempts left on this code.';
    } else {
      ui.expiry.textContent = `Code expires in ${clock(Math.ceil((state.expiresAt - t) / 1000))}`;
    }
    const wait = Math.ceil((state.resendAt - t) / 1000);
    const suffix = wait > 0 ? ` in ${clock(wait)}` : '';
    ui.resend.disabled = state.busy || wait > 0;
    ui.resend.textContent = `Resend code${suffix}`;
    ui.fallback.hidden = !state.fallbackChannel;
    ui.fallback.disabled = ui.resend.disabled;
    if (state.fallbackChannel) {
      ui.fallback.textContent = `${FALLBACK_LABELS[state.fallbackChannel] || 'Try another way'}${suffix}`;
    }
  }

  function startTicker() {
    clearInterval(ticker);
    ticker = setInterval(tick, 250);
    tick();
  }

  function stopTicker() {
    clearInterval(ticker);
    ticker = undefined;
  }

  /** No code can be entered any more. */
  function closeCode(reason) {
    state.closed = reason;
    ui.code.value = '';
    ui.code.disabled = true;
    ui.verify.disabled = true;
    stopWebOtp();
  }

  /** After a dead end: the resend button if it can be used, else the message itself. */
  function focusNext() {
    if (!ui.resend.disabled) ui.resend.focus();
    else ui.message.focus();
  }

  // ---------------------------------------------------------------------------------------------
  // WebOTP: where the browser has it, an SMS ending in "@host #code" fills the field by itself.

  function startWebOtp() {
    stopWebOtp();
    if (state.channel !== 'sms' || !('OTPCredential' in window) || !navigator.credentials) return;
    const controller = new AbortController();
    webOtp = controller;
    navigator.credentials
      .get({ otp: { transport: ['sms'] }, signal: controller.signal })
      .then((credential) => {
        if (webOtp !== controller || !credential || !credential.code) return;
        webOtp = undefined;
        ui.code.value = digitsOf(credential.code).slice(0, state.codeLength);
        void submitCode();
      })
      // Aborted, refused or unsupported: the person types the code instead.
      .catch(() => undefined);
  }

  function stopWebOtp() {
    if (webOtp) webOtp.abort();
    webOtp = undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Send.

  async function send(channel) {
    if (state.busy) return;
    setBusy(true);
    const body = { destination: state.destination };
    if (channel) body.channel = channel;
    const { status, body: data, date } = await post('/otp/send', body);
    setBusy(false);
    if (status === 202) {
      codeSent(data, date, channel);
      return;
    }
    const retry = waitText(data.retryAfter);
    switch (data.code) {
      case 'OTP_RESEND_COOLDOWN':
        state.resendAt = Math.max(state.resendAt, now() + Number(data.retryAfter) * 1000);
        say(`A code was sent a moment ago. You can ask for a new one ${retry}.`, 'error');
        break;
      case 'OTP_LOCKED':
        state.resendAt = Math.max(state.resendAt, now() + Number(data.retryAfter) * 1000);
        say(`Too many wrong codes. You can ask for a new code ${retry}.`, 'error');
        break;
      case 'OTP_SEND_LIMIT':
        say(`Too many codes were asked for. Try again ${retry}.`, 'error');
        break;
      case 'RATE_LIMITED':
        say(`Too many requests from this device. Try again ${retry}.`, 'error');
        break;
      case 'VALIDATION_FAILED':
        say(
          'Enter an email address, or a phone number with its country code (e.g. +1 415 555 0100).',
          'error',
        );
        break;
      case 'OTP_DESTINATION_NOT_ALLOWED':
        say(
          'Codes cannot be sent to this number. Try another number or an email address.',
          'error',
        );
        break;
      case 'OTP_CHANNEL_NOT_ALLOWED':
        say('Codes cannot be sent that way here. Try an email address or another number.', 'error');
        break;
      case 'OTP_DELIVERY_FAILED':
        say('The code could not be delivered. Try again in a moment.', 'error');
        break;
      default:
        say(
          status === 0
            ? 'No connection. Check your network and try again.'
            : 'Something went wrong. Try again in a moment.',
          'error',
        );
    }
    tick();
    if (ui.sendForm.hidden) {
      focusNext();
    } else {
      ui.destination.setAttribute('aria-invalid', String(data.code === 'VALIDATION_FAILED'));
      ui.destination.focus();
    }
  }

  function codeSent(data, date, channel) {
    const serverNow = Date.parse(date || '');
    const skew = Number.isNaN(serverNow) ? 0 : serverNow - Date.now();
    state.skew = Math.abs(skew) > 2000 ? skew : 0;
    state.requested = channel;
    state.channel = data.channel;
    state.codeLength = Number(data.codeLength) || 6;
    state.expiresAt = Date.parse(data.expiresAt);
    state.resendAt = Date.parse(data.resendAvailableAt);
    state.fallbackChannel = data.fallbackChannel;
    state.closed = false;

    ui.masked.textContent = data.destination;
    ui.code.maxLength = state.codeLength;
    ui.code.setAttribute('aria-label', `One-time code, ${state.codeLength} digits`);
    ui.code.disabled = false;
    ui.code.value = '';
    ui.verify.disabled = false;
    ui.destination.removeAttribute('aria-invalid');
    show('verify');
    say(`Code sent ${CHANNEL_WORDS[data.channel] || ''}.`);
    startTicker();
    ui.code.focus();
    startWebOtp();
  }

  // ---------------------------------------------------------------------------------------------
  // Verify, then call the guarded route with the token.

  async function submitCode() {
    if (state.busy || state.closed) return;
    const code = digitsOf(ui.code.value);
    if (code.length !== state.codeLength) {
      say(`Enter all ${state.codeLength} digits of the code.`, 'error');
      ui.code.focus();
      return;
    }
    stopWebOtp();
    setBusy(true);
    say('Checking the code…');
    const { status, body: data } = await post('/otp/verify', {
      destination: state.destination,
      code,
    });
    if (status === 200) {
      await callProtected(data.verificationToken);
      return;
    }
    setBusy(false);
    ui.code.value = '';
    switch (data.code) {
      case 'OTP_INVALID': {
        const left = Number(data.attemptsRemaining);
        say(`That code is not right. ${plural(left, 'attempt')} left.`, 'error');
        ui.code.focus();
        return;
      }
      case 'OTP_EXPIRED':
        closeCode('expired');
        say('This code has expired. Ask for a new code.', 'error');
        tick();
        focusNext();
        return;
      case 'OTP_ATTEMPTS_EXCEEDED':
        closeCode('exhausted');
        // A send is locked out as long: the resend button counts down with it.
        state.resendAt = Math.max(state.resendAt, now() + Number(data.retryAfter) * 1000);
        say(
          `Too many wrong codes. You can ask for a new code ${waitText(data.retryAfter)}.`,
          'error',
        );
        tick();
        focusNext();
        return;
      case 'RATE_LIMITED':
        say(`Too many tries from this device. Try again ${waitText(data.retryAfter)}.`, 'error');
        break;
      case 'VALIDATION_FAILED':
        say(`Enter the ${state.codeLength}-digit code.`, 'error');
        break;
      default:
        say(
          status === 0
            ? 'No connection. Check your network and try again.'
            : 'Something went wrong. Try again in a moment.',
          'error',
        );
    }
    ui.code.focus();
  }

  async function callProtected(token) {
    const { status, body } = await post('/example/protected', {}, { 'X-OTP-Token': token });
    setBusy(false);
    stopTicker();
    if (status !== 200) {
      closeCode('exhausted');
      say(`Verified, but the protected route refused the token (${status}). Start again.`, 'error');
      ui.change.focus();
      return;
    }
    ui.answer.textContent = JSON.stringify(body, null, 2);
    show('done');
    say('');
    ui.doneTitle.focus();
  }

  // ---------------------------------------------------------------------------------------------
  // Events.

  ui.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    state.destination = ui.destination.value.trim();
    if (state.destination === '') {
      say('Enter your email address or phone number.', 'error');
      ui.destination.setAttribute('aria-invalid', 'true');
      ui.destination.focus();
      return;
    }
    state.resendAt = 0;
    void send(undefined);
  });

  ui.verifyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void submitCode();
  });

  ui.code.addEventListener('input', () => {
    const digits = digitsOf(ui.code.value).slice(0, state.codeLength);
    if (digits !== ui.code.value) ui.code.value = digits;
    if (digits.length === state.codeLength) void submitCode();
  });

  // A pasted "123 456" or "123-456" is longer than maxlength: take the digits before it cuts.
  ui.code.addEventListener('paste', (event) => {
    const text = event.clipboardData ? event.clipboardData.getData('text') : '';
    event.preventDefault();
    ui.code.value = digitsOf(text).slice(0, state.codeLength);
    if (ui.code.value.length === state.codeLength) void submitCode();
  });

  ui.resend.addEventListener('click', () => void send(state.requested));
  ui.fallback.addEventListener('click', () => void send(state.fallbackChannel));

  function restart() {
    stopTicker();
    stopWebOtp();
    state.closed = false;
    state.fallbackChannel = undefined;
    show('send');
    say('');
    ui.destination.focus();
    ui.destination.select();
  }
  ui.change.addEventListener('click', restart);
  ui.restart.addEventListener('click', restart);
})();
