"""Pre-encoded media for the bots: VP8 pattern video and an Opus tone, encoded once, looped.

Encoding per bot would make the bots, not the server, the bottleneck; so every sender's loop is
encoded once at start with PyAV (and cached on disk between runs), then replayed with RTP
timestamps and VP8 picture ids that keep increasing across repetitions, as a live source would.

Video frames carry `tests.support.patterns.make_video_frame(sender_id, counter)` over a
background of moving block noise: flat pattern frames compress to ~100 kbit/s, a camera-like
~1 Mbit/s needs texture. The pattern cells themselves stay clean so sampled decodes can read them.
"""

from __future__ import annotations

import hashlib
import pickle
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.support.patterns import MAX_COUNTER, make_tone, make_video_frame

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
AUDIO_SAMPLES = 960  # 20 ms
MAX_PAYLOAD = 1200  # RTP payload including the VP8 descriptor
VP8_DESCRIPTOR = 4  # X=1, I=1 with a 15-bit PictureID: 4 bytes
CACHE_VERSION = 2


# Simulcast encodings of a publisher, lowest first: (width, height, target bit/s), about what
# Chromium sends for a 720p camera (scaleResolutionDownBy 4, 2, 1).
SIMULCAST_LAYERS = ((320, 180, 150_000), (640, 360, 500_000), (1280, 720, 1_500_000))


@dataclass(frozen=True)
class MediaSpec:
    sender_id: int
    seconds: float = 4.0
    width: int = 640
    height: int = 360
    fps: int = 30
    bitrate: int = 1_000_000
    keyframe_interval: int = 30
    tone_hz: float = 440.0  # 440 Hz x 4 s is a whole number of periods: the loop is seamless
    noise: int = 20  # amplitude of the background block noise (0: flat background)


@dataclass
class EncodedMedia:
    spec: MediaSpec
    # Per frame: keyframe flag and the VP8 bitstream cut into chunks that fit one RTP packet
    # once the 4-byte descriptor is put in front.
    video: list[tuple[bool, list[bytes]]]
    audio: list[bytes]  # one Opus packet per 20 ms

    @property
    def video_bitrate(self) -> float:
        total = sum(len(c) for _, chunks in self.video for c in chunks)
        return total * 8 / (len(self.video) / self.spec.fps)

    @property
    def video_packets_per_second(self) -> float:
        return sum(len(chunks) for _, chunks in self.video) / (len(self.video) / self.spec.fps)


def _frames(spec: MediaSpec) -> list[np.ndarray]:
    """RGB frames; one extra GOP in front lets the rate control settle before the loop."""
    rng = np.random.default_rng(spec.sender_id)
    n = int(spec.seconds * spec.fps)
    warm = spec.keyframe_interval
    base = make_video_frame(spec.sender_id, 0, spec.width, spec.height)
    background = (base == base[0, 0]).all(axis=2, keepdims=True)
    out = []
    block = 8
    bh, bw = -(-spec.height // block), -(-spec.width // block)
    for i in range(-warm, n):
        counter = (i % n) & MAX_COUNTER
        rgb = make_video_frame(spec.sender_id, counter, spec.width, spec.height)
        if spec.noise:
            noise = rng.integers(-spec.noise, spec.noise + 1, size=(bh, bw, 1), dtype=np.int16)
            noise = np.repeat(np.repeat(noise, block, 0), block, 1)[: spec.height, : spec.width]
            noisy = np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            rgb = np.where(background, noisy, rgb)
        out.append(rgb)
    return out


def encode_video(spec: MediaSpec) -> list[tuple[bool, list[bytes]]]:
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height = spec.width, spec.height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, spec.fps)
    ctx.framerate = spec.fps
    ctx.bit_rate = spec.bitrate
    ctx.gop_size = spec.keyframe_interval
    # Real-time settings as a browser uses them: no lookahead, no alt-ref frames.
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                   "auto-alt-ref": "0", "error-resilient": "1",
                   "keyint_min": str(spec.keyframe_interval)}
    warm = spec.keyframe_interval
    encoded: list[tuple[bool, bytes]] = []
    for i, rgb in enumerate(_frames(spec)):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = Fraction(1, spec.fps)
        if i % spec.keyframe_interval == 0:
            frame.pict_type = av.video.frame.PictureType.I
        encoded += [(p.is_keyframe, bytes(p)) for p in ctx.encode(frame)]
    encoded += [(p.is_keyframe, bytes(p)) for p in ctx.encode(None)]
    loop = encoded[warm:]
    if not loop or not loop[0][0]:
        raise RuntimeError("the encoded loop does not start with a keyframe")
    step = MAX_PAYLOAD - VP8_DESCRIPTOR
    return [(key, [data[i : i + step] for i in range(0, len(data), step)])
            for key, data in loop]


def encode_audio(spec: MediaSpec) -> list[bytes]:
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = AUDIO_CLOCK
    ctx.layout = "mono"
    ctx.format = "s16"
    ctx.bit_rate = 32000
    ctx.time_base = Fraction(1, AUDIO_CLOCK)
    n = int(spec.seconds * 1000 / 20)
    packets: list[bytes] = []
    i = 0
    while len(packets) < n:  # the encoder's lookahead delays the first packets
        samples = make_tone(spec.tone_hz, AUDIO_CLOCK, AUDIO_SAMPLES, i * AUDIO_SAMPLES)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_CLOCK
        frame.pts = i * AUDIO_SAMPLES
        frame.time_base = Fraction(1, AUDIO_CLOCK)
        packets += [bytes(p) for p in ctx.encode(frame)]
        i += 1
    return packets[:n]


def _cache_path(spec: MediaSpec, cache_dir: Path) -> Path:
    key = hashlib.sha1(repr((CACHE_VERSION, spec, av.__version__)).encode()).hexdigest()[:16]
    return cache_dir / f"media-{spec.sender_id}-{key}.pickle"


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "mediaserver-bench-cache"


def load_media(spec: MediaSpec, cache_dir: Path | None = None) -> EncodedMedia:
    """The encoded loop for `spec`, from the cache when an identical one was made before."""
    cache_dir = cache_dir or default_cache_dir()
    path = _cache_path(spec, cache_dir)
    if path.exists():
        try:
            with path.open("rb") as f:
                media = pickle.load(f)  # our own cache file, written just below
            if isinstance(media, EncodedMedia) and media.spec == spec:
                return media
        except (OSError, pickle.PickleError, EOFError, AttributeError):
            pass
    media = EncodedMedia(spec, encode_video(spec), encode_audio(spec))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(media, f)
    tmp.replace(path)  # atomic: bot processes loading concurrently never see half a file
    return media


def vp8_descriptor(picture_id: int, start: bool) -> bytes:
    """RFC 7741 4.2: X=1, S on the first packet of a frame, PID 0; I=1; M=1 + 15-bit id."""
    return bytes((0x90 if start else 0x80, 0x80, 0x80 | (picture_id >> 8) & 0x7F,
                  picture_id & 0xFF))


class MediaLoop:
    """Endless playback position in an EncodedMedia: the sender asks for the next frame.

    Timestamps advance by one frame duration per call whatever happens, so the stream stays
    continuous across loop repetitions and keyframe jumps; the picture id advances per frame.
    """

    def __init__(self, media: EncodedMedia, video_ts: int = 0, audio_ts: int = 0,
                 picture_id: int = 0) -> None:
        self.media = media
        self.video_step = VIDEO_CLOCK // media.spec.fps
        self.video_ts = video_ts & 0xFFFFFFFF
        self.audio_ts = audio_ts & 0xFFFFFFFF
        self.picture_id = picture_id & 0x7FFF
        self.video_index = 0
        self.audio_index = 0
        self.keyframes = [i for i, (key, _) in enumerate(media.video) if key]

    def next_video(self) -> tuple[int, bool, list[bytes]]:
        """(RTP timestamp, keyframe, payloads); the caller sets the marker on the last one."""
        key, chunks = self.media.video[self.video_index]
        pid = self.picture_id
        payloads = [vp8_descriptor(pid, i == 0) + c for i, c in enumerate(chunks)]
        ts = self.video_ts
        self.video_ts = (ts + self.video_step) & 0xFFFFFFFF
        self.picture_id = (pid + 1) & 0x7FFF
        self.video_index = (self.video_index + 1) % len(self.media.video)
        return ts, key, payloads

    def next_audio(self) -> tuple[int, bytes]:
        payload = self.media.audio[self.audio_index]
        ts = self.audio_ts
        self.audio_ts = (ts + AUDIO_SAMPLES) & 0xFFFFFFFF
        self.audio_index = (self.audio_index + 1) % len(self.media.audio)
        return ts, payload

    def jump_to_keyframe(self) -> None:
        """Make the next video frame a keyframe (answer to a PLI), skipping ahead in the loop."""
        if self.media.video[self.video_index][0]:
            return
        later = [i for i in self.keyframes if i > self.video_index]
        self.video_index = later[0] if later else self.keyframes[0]


def simulcast_specs(sender_id: int, seconds: float = 4.0,
                    layers: tuple[tuple[int, int, int], ...] = SIMULCAST_LAYERS) -> list[MediaSpec]:
    """One MediaSpec per simulcast encoding of a sender, lowest first."""
    return [MediaSpec(sender_id=sender_id, seconds=seconds, width=w, height=h, bitrate=b)
            for w, h, b in layers]
