// A network change (Wi-Fi to mobile, a new address) in the middle of a meeting: the session
// goes on without rejoining (docs/protocol.md, "Network change"). When a media connection goes
// 'disconnected' for a moment or 'failed', the WebSocket is checked (and, if it is dead too,
// reopened and the same participant resumed with its connections kept), then both connections
// get a new ICE session: the publish one with a new offer, the subscribe one by asking the
// server for a new offer (`restartIce`).
import { showError } from './status.js';

const DISCONNECTED_MS = 500; // 'disconnected' this long is a lost path, not a blip
const PING_MS = 1000; // a socket that does not answer a ping this fast is taken for dead

export class NetworkRecovery {
  /** meeting: the Meeting whose connections and socket are recovered. */
  constructor(meeting) {
    this.m = meeting;
    this.running = null;
    this.timers = new Map(); // pc -> timer of a 'disconnected' not yet acted on
  }

  watch(pc) {
    pc.addEventListener('iceconnectionstatechange', () => {
      const s = pc.iceConnectionState;
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

  /** One recovery at a time; a connection that breaks meanwhile is restarted by it too. */
  recover() {
    if (this.m.ended) return Promise.resolve();
    this.running ??= this.recoverNow()
      .catch((err) => { if (!this.m.ended) showError(err, 'Reconnecting media'); })
      .finally(() => { this.running = null; });
    return this.running;
  }

  async recoverNow() {
    await this.ensureSignaling();
    if (this.m.ended) return;
    // Both connections: a network change breaks them together, and a restart of a healthy
    // one costs a new check, not media.
    await Promise.all([
      this.m.publisher?.restartIce(),
      this.m.request('restartIce'),
    ]);
  }

  /** The socket answers, or was reopened with the same participant and connections. */
  async ensureSignaling() {
    try {
      await this.m.request('ping', undefined, PING_MS);
    } catch {
      await this.m.resume();
    }
  }
}
