// The media paths the connectivity check tries, best first: UDP straight to the media port,
// TCP straight to it (ICE-TCP), then the TURN relay over UDP, TCP and TLS. Each path gets a
// throw-away RTCPeerConnection of its own and a `probe` of the same name; the probe answer's
// candidates are cut down to the path's protocol, and a TURN path gathers only relay
// candidates (iceTransportPolicy 'relay') through that transport's TURN URLs alone.
import { waitForIceGathering, waitForConnected, selectedPair, formatMs } from './rtc.js';

const GATHER_MS = 3000; // a TURN server that does not answer within this gives no relay address
const CONNECT_MS = 5000; // ICE and DTLS; a path that is open takes well under a second

const DIRECT = [
  { id: 'udp', label: 'UDP direct', protocol: 'udp' },
  { id: 'tcp', label: 'TCP direct (ICE-TCP)', protocol: 'tcp' },
];
const RELAYED = [
  { id: 'turn-udp', label: 'TURN relay over UDP', transport: 'udp' },
  { id: 'turn-tcp', label: 'TURN relay over TCP', transport: 'tcp' },
  { id: 'turns', label: 'TURN relay over TLS', transport: 'tls' },
];

/** Which relay transport a TURN URL uses: a turn: URL without ?transport= is tried both ways,
 * as the browser does with it. */
function urlsByTransport(url) {
  const [base, query = ''] = url.split('?');
  if (url.startsWith('turns:')) return { tls: url };
  if (!url.startsWith('turn:')) return {}; // stun: finds no relay
  const transport = new URLSearchParams(query).get('transport');
  if (transport) return { [transport]: url };
  return { udp: `${base}?transport=udp`, tcp: `${base}?transport=tcp` };
}

/** Every path to try with the deployment's TURN servers (the `iceServers` reply), in order. */
export function pathsFor(iceServers) {
  const relayed = RELAYED.map((p) => ({ ...p, relay: true, protocol: 'udp', iceServers: [] }));
  for (const server of iceServers || []) {
    const urls = [server.urls].flat();
    for (const path of relayed) {
      const mine = urls.map((u) => urlsByTransport(u)[path.transport]).filter(Boolean);
      if (mine.length) path.iceServers.push({ ...server, urls: mine });
    }
  }
  return [...DIRECT, ...relayed.filter((p) => p.iceServers.length)];
}

/** The answer with only the candidates of `protocol` (the server's are all host candidates). */
function keepCandidates(sdp, protocol) {
  return sdp.split('\r\n').filter((line) => !line.startsWith('a=candidate:')
    || line.split(' ')[2].toLowerCase() === protocol).join('\r\n');
}

/** The server's announced candidates [{protocol, address, port}], for the advice. */
export function announced(sdp) {
  const seen = new Map();
  for (const line of sdp.split('\r\n')) {
    if (!line.startsWith('a=candidate:')) continue;
    const f = line.split(' ');
    const c = { protocol: f[2].toLowerCase(), address: f[4], port: Number(f[5]) };
    seen.set(`${c.protocol} ${c.address} ${c.port}`, c);
  }
  return [...seen.values()];
}

function describePair(pair) {
  const side = (c) => `${c.candidateType}/${c.protocol}`;
  const via = pair.local.relayProtocol ? ` (to TURN over ${pair.local.relayProtocol})` : '';
  return `${side(pair.local)}${via} → ${side(pair.remote)}`;
}

/**
 * Tries one path; resolves {ok, rtt (ms or null), pair, detail, sdp (the probe answer)}, never
 * rejects except when `signal` aborts.
 */
export async function probePath(sig, path, signal) {
  const pc = new RTCPeerConnection({ iceServers: path.iceServers || [],
    iceTransportPolicy: path.relay ? 'relay' : 'all' });
  const onAbort = () => pc.close();
  signal?.addEventListener('abort', onAbort);
  let probing = false;
  let answer = null;
  try {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, GATHER_MS);
    signal?.throwIfAborted();
    const offer = pc.localDescription.sdp;
    if (path.relay && !/ typ relay /.test(offer)) {
      return { ok: false, detail: 'no relay address from the TURN server (blocked, or it '
        + 'refused the credentials)' };
    }
    probing = true;
    ({ sdp: answer } = await sig.request('probe', { sdp: offer, name: path.id }));
    await pc.setRemoteDescription({ type: 'answer', sdp: keepCandidates(answer, path.protocol) });
    try {
      await waitForConnected(pc, CONNECT_MS);
    } catch {
      signal?.throwIfAborted();
      return { ok: false, sdp: answer, detail: `no connection within ${CONNECT_MS / 1000} s` };
    }
    const pair = await selectedPair(pc);
    const rtt = pair?.rtt ?? null;
    return { ok: true, rtt, pair, sdp: answer,
      detail: `${rtt === null ? 'connected' : `RTT ${formatMs(rtt)}`}`
        + (pair ? ` · ${describePair(pair)}` : '') };
  } catch (err) {
    signal?.throwIfAborted();
    return { ok: false, sdp: answer, detail: err?.message || String(err) };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // Frees the server's throw-away transport now instead of after its 20 s timeout.
    if (probing) await sig.request('probeDone', { name: path.id }, 2000).catch(() => {});
    pc.close();
  }
}

export const ADVICE_INTRO = 'Your network lets this page load but blocks the audio and video, '
  + 'so you would see and hear nobody. Ask your IT department to allow outgoing connections '
  + 'from your computer to one of these (the first is best):';

function portWords(range) {
  return range[0] === range[1] ? `port ${range[0]}` : `ports ${range[0]}-${range[1]}`;
}

/**
 * What to ask the IT department to open, in plain words, best first: the media host (from the
 * probe answers' candidates) on the media ports (`mediaPorts` of the probeInfo reply: every
 * worker's, {udp: [first, last], tcp: [...]}; else the port the candidate named), then the
 * TURN servers' host and port. Returns {openings: [...], text: ADVICE_INTRO and them}.
 */
export function advice(candidates, iceServers, mediaPorts) {
  const where = [];
  for (const c of candidates) {
    const range = mediaPorts?.[c.protocol] || [c.port, c.port];
    where.push(`${c.address}, ${c.protocol.toUpperCase()} ${portWords(range)} (audio and `
      + `video${c.protocol === 'tcp' ? ' over TCP' : ''})`);
  }
  for (const server of iceServers || []) {
    for (const url of [server.urls].flat()) {
      const m = /^(turns?):([^?]+):(\d+)(?:\?transport=(\w+))?/.exec(url);
      if (!m) continue;
      const [, scheme, host, port, transport] = m;
      const what = scheme === 'turns' ? 'TLS (TCP)' : (transport ? transport.toUpperCase()
        : 'UDP and TCP');
      where.push(`${host}, ${what} port ${port} (the relay server)`);
    }
  }
  const openings = [...new Set(where)];
  return { openings, text: `${ADVICE_INTRO} ${openings.join('; ')}.` };
}
