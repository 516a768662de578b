// RTCPeerConnection helpers shared by the connectivity check and the meeting.

/**
 * The server takes no trickled candidates, so every offer/answer must carry them all.
 * Capped because a dead interface can hold gathering open for a long time; whatever was
 * gathered by then is in pc.localDescription.
 */
export function waitForIceGathering(pc, capMs = 3000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onState);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const onState = () => { if (pc.iceGatheringState === 'complete') done(); };
    const onCandidate = (e) => { if (!e.candidate) done(); }; // null candidate: end of gathering
    const timer = setTimeout(done, capMs);
    pc.addEventListener('icegatheringstatechange', onState);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/** Resolves when ICE and DTLS are done (connectionState 'connected'). */
export function waitForConnected(pc, timeoutMs) {
  return new Promise((resolve, reject) => {
    const finish = (settle) => {
      clearTimeout(timer);
      pc.removeEventListener('connectionstatechange', check);
      settle();
    };
    const check = () => {
      const s = pc.connectionState;
      if (s === 'connected') finish(resolve);
      else if (s === 'failed' || s === 'closed') {
        finish(() => reject(new Error(`The media connection ${s} (ICE ${pc.iceConnectionState}).`)));
      }
    };
    const timer = setTimeout(() => finish(() => reject(new Error(
      `No media connection after ${timeoutMs / 1000} s (ICE ${pc.iceConnectionState}); ` +
      'UDP to the media port may be blocked.'))), timeoutMs);
    pc.addEventListener('connectionstatechange', check);
    check();
  });
}

/**
 * The selected candidate pair: {rtt (ms or null), local, remote (their candidate stats:
 * candidateType, protocol, relayProtocol, address, port)}, or null. Polled briefly:
 * currentRoundTripTime appears only once a check response has been timed.
 */
export async function selectedPair(pc, waitMs = 1500) {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        pair = stats.get(s.selectedCandidatePairId);
      }
    });
    const timed = pair?.currentRoundTripTime !== undefined;
    if (pair && (timed || performance.now() > deadline)) {
      return { rtt: timed ? pair.currentRoundTripTime * 1000 : null,
        local: stats.get(pair.localCandidateId), remote: stats.get(pair.remoteCandidateId) };
    }
    if (performance.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function formatMs(ms) {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}
