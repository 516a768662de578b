// A network change (Wi-Fi to mobile, a new address) in the middle of a meeting: the session
// goes on without rejoining (docs/protocol.md, "Network change"). Signs of it: a media
// connection that goes 'disconnected' for a moment or 'failed' (Chromium says so only ~5 s
// after its path died), or sooner, a connected one that has received nothing for a second
// while the WebSocket does not answer a ping either. Then the socket is reopened and the same
// participant resumed with its connections kept, and both connections get a new ICE session:
// the publish one with a new offer, the subscribe one by asking the server for a new offer
// (`restartIce`).
import { showError } from './status.js';
import { state } from './state.js';

const DISCONNECTED_MS = 500; // 'disconnected' this long is a lost path, not a blip
const PING_MS = 700; // a socket that does not answer a ping this fast is taken for dead
// The server sends each connected connection something several times a second while it
// carries media (RTP, transport-cc feedback every 100 ms, reports every second): this long
// without a byte, the socket is pinged. Only a ping that fails too starts a recovery, so
// a connection with nothing to carry costs one ping per quiet spell, no restart.
const SILENT_MS = 800;
const POLL_MS = 250;

async function bytesReceived(pc) {
  let total = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === 'transport') total += s.bytesReceived || 0; });
  return total;
}

export class NetworkRecovery {
  /** meeting: the Meeting whose connections and socket are recovered. */
  constructor(meeting) {
    this.m = meeting;
    this.running = null;
    this.timers = new Map(); // pc -> timer of a 'disconnected' not yet acted on
    this.heard = new WeakMap(); // pc -> {bytes, at, quiet}: the last time it received
    this.poller = null;
    this.pinging = false;
  }

  watch(pc) {
    pc.addEventListener('iceconnectionstatechange', () => {
      const s = pc.iceConnectionState;
      this.note(`${pc === this.m.publishPc ? 'publish' : 'subscribe'} ICE ${s}`);
      clearTimeout(this.timers.get(pc));
      this.timers.delete(pc);
      if (s === 'failed') {
        this.recover();
      } else if (s === 'disconnected') {
        this.timers.set(pc, setTimeout(() => {
          this.timers.delete(pc);
          if (pc.iceConnectionState === 'disconnected') this.recover();
        }, DISCONNECTED_MS));
      }
    });
  }

  /** What happened when (ms since the page loaded), for tests and bug reports. */
  note(what) {
    state.network.push([Math.round(performance.now()), what]);
    if (state.network.length > 100) state.network.shift();
  }

  /** Watch the connections for silence until the meeting ends. */
  start() {
    this.poller ??= setInterval(() => {
      if (this.m.ended) {
        clearInterval(this.poller);
        return;
      }
      this.listen().catch(() => {}); // a connection closed meanwhile: next round
    }, POLL_MS);
  }

  async listen() {
    const now = performance.now();
    let silent = false;
    for (const pc of [this.m.publishPc, this.m.subscribePc]) {
      if (!pc || pc.connectionState !== 'connected') continue;
      const bytes = await bytesReceived(pc);
      const heard = this.heard.get(pc);
      if (!heard || bytes !== heard.bytes) {
        this.heard.set(pc, { bytes, at: now, quiet: false });
      } else if (!heard.quiet && now - heard.at > SILENT_MS) {
        heard.quiet = true; // asked about once per quiet spell
        silent = true;
      }
    }
    if (silent && !this.running && !this.pinging) {
      this.pinging = true;
      this.note('silent: ping');
      const alive = await this.ping().finally(() => { this.pinging = false; });
      if (!alive) this.recover({ socketDead: true });
    }
  }

  async ping() {
    try {
      await this.m.request('ping', undefined, PING_MS);
      return true;
    } catch {
      return false;
    }
  }

  /** One recovery at a time; a connection that breaks meanwhile is restarted by it too. */
  recover({ socketDead = false } = {}) {
    if (this.m.ended) return Promise.resolve();
    this.running ??= this.recoverNow(socketDead)
      .catch((err) => { if (!this.m.ended) showError(err, 'Reconnecting media'); })
      .finally(() => { this.running = null; });
    return this.running;
  }

  async recoverNow(socketDead) {
    this.note(`recovering${socketDead ? ' (socket dead)' : ''}`);
    // The socket answers, or is reopened with the same participant and connections.
    if (socketDead || !(await this.ping())) {
      await this.m.resume();
      this.note('resumed');
    }
    if (this.m.ended) return;
    // Both connections: a network change breaks them together, and a restart of a healthy
    // one costs a new check, not media.
    await Promise.all([
      this.m.publisher?.restartIce(),
      this.m.request('restartIce'),
    ]);
    this.note('ICE restarted');
  }
}
