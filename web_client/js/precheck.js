// Connectivity check before joining: HTTP, signalling WebSocket + ping, and a throw-away
// media connection (`probe`) that proves UDP to the media port gets through ICE and DTLS.
import { Signaling, wsUrl } from './signaling.js';
import { waitForIceGathering, waitForConnected, candidatePairRtt, formatMs } from './rtc.js';
import { describeError } from './status.js';

const STEPS = [
  ['http', 'Server reachable (HTTP)'],
  ['ws', 'Signalling (WebSocket)'],
  ['media', 'Media connection (UDP, ICE + DTLS)'],
];
const PINGS = 3;

async function checkHealth() {
  const t0 = performance.now();
  const res = await fetch('/api/health', { cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || body.status !== 'ok') throw new Error(`health check answered HTTP ${res.status}`);
  return `${formatMs(performance.now() - t0)}`;
}

/** Median of a few pings, so one slow first message does not decide. */
async function pingRtt(sig) {
  const times = [];
  for (let i = 0; i < PINGS; i++) {
    const t0 = performance.now();
    await sig.request('ping');
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

async function probeMedia(sig, signal) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const onAbort = () => pc.close();
  signal?.addEventListener('abort', onAbort);
  let probing = false;
  try {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 3000);
    signal?.throwIfAborted();
    probing = true;
    const { sdp } = await sig.request('probe', { sdp: pc.localDescription.sdp });
    await pc.setRemoteDescription({ type: 'answer', sdp });
    await waitForConnected(pc, 8000);
    const rtt = await candidatePairRtt(pc);
    return rtt === null ? 'connected' : `RTT ${formatMs(rtt)}`;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // Frees the server's throw-away transport now instead of after its 20 s timeout.
    if (probing) await sig.request('probeDone', undefined, 2000).catch(() => {});
    pc.close();
  }
}

/**
 * Runs all steps; onStep(id, {state: 'running'|'pass'|'fail', detail}). Resolves true when all
 * pass; rejects only when aborted. getTokenFn is called lazily so a token problem shows up as
 * a failed signalling step rather than a crash.
 */
export async function runPrecheck({ getTokenFn, onStep, signal }) {
  let allPassed = true;
  const step = async (id, fn) => {
    signal?.throwIfAborted();
    onStep(id, { state: 'running', detail: '' });
    try {
      onStep(id, { state: 'pass', detail: await fn() });
      return true;
    } catch (err) {
      if (signal?.aborted) throw err;
      onStep(id, { state: 'fail', detail: describeError(err) });
      allPassed = false;
      return false;
    }
  };

  await step('http', checkHealth);
  let sig = null;
  const onAbort = () => sig?.close();
  signal?.addEventListener('abort', onAbort);
  try {
    const wsOk = await step('ws', async () => {
      const token = await getTokenFn();
      sig = await Signaling.connect(wsUrl(token));
      signal?.throwIfAborted();
      return `ping RTT ${formatMs(await pingRtt(sig))}`;
    });
    if (wsOk) {
      await step('media', () => probeMedia(sig, signal));
    } else {
      onStep('media', { state: 'fail', detail: 'not tried: no signalling connection' });
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    sig?.close();
  }
  return allPassed;
}

/** The check's UI: one row per step and an overall PASS/FAIL banner. */
export class PrecheckPanel {
  constructor({ list, banner, button, getTokenFn }) {
    this.list = list;
    this.banner = banner;
    this.button = button;
    this.getTokenFn = getTokenFn;
    this.controller = null;
    this.rows = new Map();
    button.addEventListener('click', () => this.run());
  }

  async run() {
    this.cancel();
    const controller = new AbortController();
    this.controller = controller;
    this._render();
    this._setBanner('running', 'Checking…');
    this.button.disabled = true;
    try {
      const ok = await runPrecheck({
        getTokenFn: this.getTokenFn,
        signal: controller.signal,
        onStep: (id, s) => this._setStep(id, s),
      });
      this._setBanner(ok ? 'pass' : 'fail', ok ? 'PASS: ready to join'
        : 'FAIL: see the failed step; you may not be able to see or hear others');
    } catch (err) {
      if (!controller.signal.aborted) this._setBanner('fail', `FAIL: ${describeError(err)}`);
    } finally {
      if (this.controller === controller) {
        this.controller = null;
        this.button.disabled = false;
      }
    }
  }

  /** Stop a running check (e.g. on Join) so its throw-away session does not linger. */
  cancel() {
    this.controller?.abort();
    this.controller = null;
    this.button.disabled = false;
  }

  _render() {
    this.rows.clear();
    this.list.replaceChildren(...STEPS.map(([id, label]) => {
      const li = document.createElement('li');
      li.className = 'step';
      li.dataset.state = 'pending';
      const name = document.createElement('span');
      name.className = 'step-label';
      name.textContent = label;
      const detail = document.createElement('span');
      detail.className = 'step-detail';
      li.append(name, detail);
      this.rows.set(id, { li, detail });
      return li;
    }));
  }

  _setStep(id, { state, detail }) {
    const row = this.rows.get(id);
    if (!row) return;
    row.li.dataset.state = state;
    const word = { running: '…', pass: 'pass', fail: 'fail' }[state] || '';
    row.detail.textContent = detail ? `${word} · ${detail}` : word;
  }

  _setBanner(state, text) {
    this.banner.dataset.state = state;
    this.banner.textContent = text;
  }
}
