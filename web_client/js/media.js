// Camera and microphone: opening them, and the pre-join preview with device pickers.

export const PREVIEW_VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 } };

/**
 * getUserMedia that degrades: if both kinds cannot be opened, try each alone so a missing
 * camera does not also cost the microphone. Always resolves: {stream, error}.
 */
export async function openMedia(constraints) {
  if (!navigator.mediaDevices?.getUserMedia) {
    const error = new Error('Camera and microphone need a secure page (https or localhost).');
    return { stream: new MediaStream(), error };
  }
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints), error: null };
  } catch (error) {
    const tracks = [];
    for (const kind of ['audio', 'video']) {
      if (!constraints[kind]) continue;
      try {
        const s = await navigator.mediaDevices.getUserMedia({ [kind]: constraints[kind] });
        tracks.push(...s.getTracks());
      } catch { /* the first error is the one reported */ }
    }
    return { stream: new MediaStream(tracks), error };
  }
}

export function stopStream(stream) {
  stream?.getTracks().forEach((t) => t.stop());
}

export class MediaPreview {
  constructor({ video, audioSelect, videoSelect, onError }) {
    this.video = video;
    this.selects = { audio: audioSelect, video: videoSelect };
    this.onError = onError;
    this.stream = null;
    this.ready = Promise.resolve(); // settles when the latest (re)open is done
    for (const select of Object.values(this.selects)) {
      // Chained: two quick changes must not open two streams and leak the first.
      select.addEventListener('change', () => { this.ready = this.ready.then(() => this.restart()); });
    }
    navigator.mediaDevices?.addEventListener?.('devicechange', () => this.fillPickers());
  }

  start() {
    this.ready = this.restart();
    return this.ready;
  }

  /** Constraints for the devices picked now; also used to reopen them on rejoin. */
  constraints() {
    const pick = (kind) => this.selects[kind].value;
    return {
      audio: pick('audio') ? { deviceId: { exact: pick('audio') } } : true,
      video: pick('video') ? { ...PREVIEW_VIDEO, deviceId: { exact: pick('video') } } : PREVIEW_VIDEO,
    };
  }

  async restart() {
    // Stop first: some cameras cannot be opened twice at once.
    stopStream(this.stream);
    const { stream, error } = await openMedia(this.constraints());
    this.stream = stream;
    this.video.srcObject = stream;
    this.video.closest('.preview')?.classList.toggle('no-video', !stream.getVideoTracks().length);
    if (error) this.onError?.(error);
    // Labels are only exposed once permission is granted, hence after getUserMedia.
    await this.fillPickers().catch((err) => console.warn('enumerateDevices', err));
  }

  async fillPickers() {
    if (!navigator.mediaDevices?.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const kind of ['audio', 'video']) {
      const select = this.selects[kind];
      const current = this.stream?.getTracks().find((t) => t.kind === kind)
        ?.getSettings().deviceId || select.value;
      const options = devices
        .filter((d) => d.kind === `${kind}input` && d.deviceId)
        .map((d, i) => new Option(d.label || `${kind === 'audio' ? 'Microphone' : 'Camera'} ${i + 1}`,
          d.deviceId, false, d.deviceId === current));
      select.replaceChildren(...options);
      select.disabled = options.length === 0;
    }
  }

  /** Hand the live stream over to the meeting; the preview no longer owns it. */
  takeStream() {
    const stream = this.stream;
    this.stream = null;
    this.video.srcObject = null;
    return stream;
  }
}
