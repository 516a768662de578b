"""The stream allocator's choices (mediaserver/allocator.py) on the situations of issue 11."""

from __future__ import annotations

from mediaserver.allocator import Demand, Layer, allocate, useful_layers

# three simulcast layers as the web client sends them (rid q, h, f)
SIMULCAST = (Layer(320, 180, 150_000), Layer(640, 360, 500_000), Layer(1280, 720, 1_500_000))
SCREEN = (Layer(1920, 1080, 1_200_000),)
AUDIO = 40_000


def camera(cid: str, tile: tuple[int, int] | None = (640, 360), **kw) -> Demand:
    return Demand(cid, "video", SIMULCAST, tile=tile, **kw)


def audio(cid: str) -> Demand:
    return Demand(cid, "audio", bitrate=AUDIO, source="microphone")


def test_audio_comes_first_even_past_the_estimate() -> None:
    result = allocate(30_000, [audio("a1"), audio("a2"), camera("v1")])
    assert result.layer("v1") is None and result.paused == ["v1"]
    assert result.used == 2 * AUDIO  # both audio streams, although over the 30 kbit/s


def test_hidden_tiles_get_nothing_whatever_the_budget() -> None:
    result = allocate(10_000_000, [camera("shown"), camera("hidden", visible=False)])
    assert result.layer("hidden") is None and "hidden" not in result.paused
    assert result.layer("shown") == 1  # a 640x360 tile: the 640x360 layer, not the 720p one


def test_never_a_layer_larger_than_the_tile() -> None:
    small = camera("thumb", tile=(300, 170))
    large = camera("main", tile=(1200, 700))
    result = allocate(10_000_000, [small, large])
    assert result.layer("thumb") == 0 and result.layer("main") == 2
    assert useful_layers(camera("x", tile=(2000, 1200))) == 3  # beyond the top: the top
    assert useful_layers(camera("x", tile=None)) == 3  # unknown size: no cap


def test_a_weak_link_keeps_the_speaker_moving_and_pauses_what_does_not_fit() -> None:
    # 400 kbit/s: audio of three people, three camera tiles of the same size
    demands = [audio("a1"), audio("a2"), audio("a3"), camera("v1"),
               camera("v2", speaker=True), camera("v3")]
    result = allocate(400_000, demands)
    assert result.layer("v2") == 0  # the active speaker first: 120 + 150 of the 400
    assert result.paused == ["v1", "v3"]  # another 150 (+10% headroom) does not fit
    assert result.used <= 400_000
    # a little more and the next tile moves too
    assert allocate(460_000, demands).paused == ["v3"]


def test_screen_share_before_cameras() -> None:
    demands = [audio("a"), camera("cam", speaker=True), Demand("scr", "video", SCREEN,
                                                               source="screen", tile=(800, 450))]
    result = allocate(1_500_000, demands)
    assert result.layer("scr") == 0  # full resolution: a screen is never capped by its tile
    assert result.layer("cam") == 0  # what is left: the low layer
    assert allocate(1_000_000, demands).layer("scr") is None  # does not fit: paused...
    assert allocate(1_000_000, demands).layer("cam") == 1  # ...and the camera gets more


def test_upgrades_need_headroom_but_what_is_sent_is_kept() -> None:
    # exactly the 640x360 layer's cost: not enough to switch up to it...
    budget = AUDIO + SIMULCAST[1].bitrate
    demands = [audio("a"), camera("v")]
    assert allocate(budget, demands).layer("v") == 0
    # ...but a consumer already on it keeps it at the same estimate, and down to 80% of
    # its cost (no flapping: every switch costs a keyframe)
    assert allocate(budget, demands, current={"v": 1}).layer("v") == 1
    kept = AUDIO + int(SIMULCAST[1].bitrate * 0.8)
    assert allocate(kept, demands, current={"v": 1}).layer("v") == 1
    assert allocate(kept - 1, demands, current={"v": 1}).layer("v") == 0
    # the same for the lowest layer: kept down to 80%, paused below
    low = AUDIO + int(SIMULCAST[0].bitrate * 0.8)
    assert allocate(low, demands, current={"v": 0}).layer("v") == 0
    assert allocate(low - 1, demands, current={"v": 0}).layer("v") is None


def test_a_capacity_step_down_and_up_moves_layers_down_and_back() -> None:
    demands = [audio("a"), camera("v", tile=(1280, 720))]
    layers, current = [], None
    for budget in (2_000_000, 300_000, 2_000_000):
        chosen = allocate(budget, demands, current=current).layers
        layers.append(chosen["v"])
        current = chosen
    assert layers == [2, 0, 2]


def test_the_lowest_layer_being_sent_is_kept_down_to_keep_lowest() -> None:
    demands = [audio("a"), camera("v")]
    half = AUDIO + SIMULCAST[0].bitrate // 2
    assert allocate(half, demands, current={"v": 0}, keep_lowest=0.5).layer("v") == 0
    assert allocate(half - 1, demands, current={"v": 0}, keep_lowest=0.5).layer("v") is None
    # the first video gets its lowest layer at that share even when new (no picture at
    # all is worse than a slightly overloaded link); a second one needs all of it and more
    assert allocate(half, demands, keep_lowest=0.5).layer("v") == 0
    two = [*demands, camera("w", tile=(320, 180))]
    assert allocate(half, two, keep_lowest=0.5).layer("w") is None
