// Connectivity check before joining: HTTP, signalling WebSocket + ping, then every media path
// (netpaths.js: UDP and TCP direct, TURN over UDP, TCP and TLS), each on a throw-away
// connection, side by side. The best path that works decides how the meeting connects; when
// none works the person is told what to ask their IT department to open. The outcome is on
// the page and in window.__precheck (tests read it there).
import { Signaling, wsUrl } from './signaling.js';
import { formatMs } from './rtc.js';
import { describeError } from './status.js';
import { pathsFor, probePath, announced, advice, ADVICE_INTRO } from './netpaths.js';

const STEPS = [
  ['http', 'Server reachable (HTTP)'],
  ['ws', 'Signalling (WebSocket)'],
];
const PINGS = 3;
const MEDIA_LABEL = 'Media connection: ';

/** What tests and the meeting read: state 'idle'|'running'|'pass'|'fail'|'cancelled'; paths
 * [{id, label, ok, rtt, local, remote, detail}] in the order tried; best: the id of the first
 * that works; relayOnly: only a TURN path works; advice: what to ask IT to open, when nothing
 * works (openings: its list of hosts and ports); tookMs: how long the whole check took. */
export const precheckResult = { state: 'idle', paths: [], best: null, relayOnly: false,
  advice: null, openings: [], tookMs: null };
window.__precheck = precheckResult;

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

/** Every path side by side, a row each (onStep); fills precheckResult; the best that works. */
async function probeMedia(sig, onStep, signal) {
  const { iceServers, mediaPorts } = await sig.request('probeInfo');
  const paths = pathsFor(iceServers);
  for (const path of paths) {
    onStep(`media-${path.id}`, { state: 'running', label: MEDIA_LABEL + path.label });
  }
  const outcomes = await Promise.all(paths.map(async (path) => {
    const out = await probePath(sig, path, signal);
    onStep(`media-${path.id}`, { state: out.ok ? 'pass' : 'fail', detail: out.detail });
    return { path, ...out };
  }));
  precheckResult.paths = outcomes.map(({ path, ok, rtt, pair, detail }) => ({
    id: path.id, label: path.label, relay: !!path.relay, ok, rtt: rtt ?? null, detail,
    local: pair ? { type: pair.local.candidateType, protocol: pair.local.protocol,
      relayProtocol: pair.local.relayProtocol || '' } : null,
    remote: pair ? { type: pair.remote.candidateType, protocol: pair.remote.protocol,
      address: pair.remote.address, port: pair.remote.port } : null,
  }));
  const best = outcomes.find((o) => o.ok) || null;
  precheckResult.best = best?.path.id ?? null;
  precheckResult.relayOnly = !!best?.path.relay;
  const answer = outcomes.find((o) => o.sdp)?.sdp;
  const help = best ? null : advice(answer ? announced(answer) : [], iceServers, mediaPorts);
  precheckResult.advice = help?.text ?? null;
  precheckResult.openings = help?.openings ?? [];
  return best;
}

/**
 * Runs all steps; onStep(id, {state: 'running'|'pass'|'fail', detail, label}) (a step's first
 * call may name a row not known in advance: the media paths). Resolves true when HTTP and
 * signalling pass and at least one media path works; rejects only when aborted. getTokenFn is
 * called lazily so a token problem shows up as a failed signalling step rather than a crash.
 */
export async function runPrecheck({ getTokenFn, onStep, signal }) {
  let allPassed = true;
  const step = async (id, fn) => {
    signal?.throwIfAborted();
    onStep(id, { state: 'running' });
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

  const started = performance.now();
  Object.assign(precheckResult, { state: 'running', paths: [], best: null, relayOnly: false,
    advice: null, openings: [], tookMs: null });
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
    if (!wsOk) {
      onStep('media', { state: 'fail', label: 'Media connection',
        detail: 'not tried: no signalling connection' });
    } else if (!await probeMedia(sig, onStep, signal)) {
      allPassed = false;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    sig?.close();
  }
  precheckResult.tookMs = performance.now() - started;
  precheckResult.state = allPassed ? 'pass' : 'fail';
  return allPassed;
}

/** The check's UI: one row per step and path, an overall PASS/FAIL banner, and the advice
 * when no media path works. */
export class PrecheckPanel {
  constructor({ list, banner, button, adviceBox, getTokenFn }) {
    this.list = list;
    this.banner = banner;
    this.button = button;
    this.adviceBox = adviceBox;
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
      this._setBanner(ok ? 'pass' : 'fail', this._summary(ok));
      this._showAdvice();
    } catch (err) {
      if (!controller.signal.aborted) this._setBanner('fail', `FAIL: ${describeError(err)}`);
    } finally {
      if (this.controller === controller) {
        this.controller = null;
        this.button.disabled = false;
      }
    }
  }

  /** The advice as a sentence and a list of what to open. */
  _showAdvice() {
    const { advice: text, openings } = precheckResult;
    this.adviceBox.hidden = !text;
    if (!text) return;
    const intro = document.createElement('p');
    intro.textContent = ADVICE_INTRO;
    const list = document.createElement('ul');
    list.append(...openings.map((o) => Object.assign(document.createElement('li'),
      { textContent: o })));
    this.adviceBox.replaceChildren(intro, list);
  }

  _summary(ok) {
    const best = precheckResult.paths.find((p) => p.id === precheckResult.best);
    if (ok) {
      return `PASS: ready to join (media: ${best.label}${
        best.rtt === null ? '' : `, RTT ${formatMs(best.rtt)}`})`;
    }
    if (precheckResult.advice) return 'FAIL: audio and video cannot get through your network';
    return 'FAIL: see the failed step; you may not be able to see or hear others';
  }

  /** Stop a running check (e.g. on Join) so its throw-away session does not linger. */
  cancel() {
    if (this.controller) precheckResult.state = 'cancelled';
    this.controller?.abort();
    this.controller = null;
    this.button.disabled = false;
  }

  _render() {
    this.rows.clear();
    this.list.replaceChildren();
    this.adviceBox.hidden = true;
    for (const [id, label] of STEPS) this._row(id, label);
  }

  _row(id, label) {
    const li = document.createElement('li');
    li.className = 'step';
    li.dataset.state = 'pending';
    li.dataset.step = id;
    const name = document.createElement('span');
    name.className = 'step-label';
    name.textContent = label;
    const detail = document.createElement('span');
    detail.className = 'step-detail';
    li.append(name, detail);
    this.list.append(li);
    const row = { li, detail };
    this.rows.set(id, row);
    return row;
  }

  _setStep(id, { state, detail, label }) {
    const row = this.rows.get(id) || (label && this._row(id, label));
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
