"""The send-side estimator decides exactly as it did before it was made cheap.

Closed-loop traces in simulated time: a sender that sends as the media worker does (a frame's
packets in one burst with one send record, 30 frames a second at the estimate, Opus every
20 ms), a bottleneck (tests/test_bwe.py's Link) with a capacity step down and up, a delay ramp,
random loss, some packets overtaken (reordering), and a receiver whose transport-cc feedback
(our TwccRecorder every 100 ms) is now and then lost or delivered twice. Sequence numbers
cross 0xFFFF and the receiver's 24-bit reference time wraps. Probe results (`raise_to`) come
in as the allocator's prober gives them.

PINNED below: the estimate after every feedback, the detector's usage, and the final
counters were computed with the estimator of commit 9caf0ee (before the one-pass feedback
path) and are kept as this test's expected values. Integers and states must match exactly;
the few floats to 1e-12 relative (the same operations in the same order give the same bits).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediaserver.bwe.delay import ArrivalGroups
from mediaserver.bwe.estimator import MAX_RATE, MIN_RATE, SendSideEstimator
from mediaserver.bwe.history import SendHistory
from mediaserver.rtp.twcc import (
    REFERENCE_MASK,
    REFERENCE_TICK_US,
    TwccRecorder,
    build_feedback,
    parse_feedback,
    parse_packet,
)
from tests.test_bwe import Link, step

FEEDBACK_INTERVAL = 0.1
# The receiver's clock: 3 s before its 24-bit reference time (64 ms units) wraps.
RECEIVER_CLOCK = (REFERENCE_MASK + 1) * REFERENCE_TICK_US / 1e6 - 3.0


@dataclass
class Scenario:
    duration: float
    capacity: Callable[[float], float]
    delay: Callable[[float], float] = lambda t: 0.025
    loss: float = 0.0
    jitter: float = 0.002
    reorder: float = 0.0  # share of packets held 12 ms more on the way (overtaken)
    feedback_lost: float = 0.0
    feedback_twice: float = 0.0
    app_limit: Callable[[float], float] | None = None  # bit/s the application has to send
    probe_every: float = 0.0  # s between probe results (raise_to 1.3 x the estimate)
    seed: int = 1


def ramp(t: float) -> float:
    return 0.025 + max(0.0, min(t, 12.0) - 8.0) * 0.04  # +40 ms a second from 8 s to 12 s


SCENARIOS = {
    "capacity step down and up": Scenario(30, lambda t: 2e6 if t < 10 else
                                          (4e5 if t < 18 else 2.5e6), jitter=0.004),
    "delay ramp": Scenario(20, lambda t: 5e7, delay=ramp),
    "random loss": Scenario(25, lambda t: 3e6 if t < 12 else 1.2e6,
                            loss=0.03, seed=2),
    "reordering, lost and repeated feedback, probes, held video":
        Scenario(25, step(15, 1.5e6, 7e5), loss=0.01, reorder=0.03, feedback_lost=0.1,
                 feedback_twice=0.05, app_limit=lambda t: 6e4 if 6 <= t < 9 else 1e9,
                 probe_every=2.5, seed=3),
}


def handle(est: SendSideEstimator, history: SendHistory, data: bytes, now: float) -> None:
    """What the media worker does with one feedback packet."""
    fb = parse_packet(data)
    est.on_feedback(history.lookup(fb.base_seq, len(fb.arrivals)), fb, now)


Handler = Callable[[SendSideEstimator, SendHistory, bytes, float], None]


def run(s: Scenario, native: bool = True,
        handler: Handler = handle) -> tuple[list[int], str, list[float]]:
    """(estimate after each feedback, usage letters, final figures)."""
    rng = random.Random(s.seed)
    est = SendSideEstimator(initial=300_000, native=native)
    history = SendHistory()
    recorder = TwccRecorder()
    link = Link(s.capacity, s.delay, s.loss, s.jitter, s.seed)
    in_flight: list[tuple[float, int]] = []
    deliveries: list[tuple[float, int, bytes]] = []  # (when, order, packet)
    estimates: list[int] = []
    usage = ""
    seq, order = 0xFC00, 0  # wraps after about 1,000 packets
    next_frame, next_audio, next_build, next_probe = 0.0, 0.003, FEEDBACK_INTERVAL, s.probe_every
    while True:
        t = min(next_frame, next_audio, next_build, deliveries[0][0] if deliveries else 1e9)
        if t > s.duration:
            break
        sent: list[int] = []
        if deliveries and t == deliveries[0][0]:
            handler(est, history, heapq.heappop(deliveries)[2], t)
            estimates.append(est.estimate)
            usage += est.usage[0]
            if s.probe_every and t >= next_probe:
                est.raise_to(est.estimate * 1.3)
                next_probe += s.probe_every
        elif t == next_frame:
            rate = min(est.estimate, s.app_limit(t)) if s.app_limit else est.estimate
            size = max(300, int(rate / 30 / 8) - 100 * 50 // 30)
            sent = [min(1200, size - k) for k in range(0, size, 1200)]
            next_frame = t + 1 / 30
        elif t == next_audio:
            sent = [100]
            next_audio = t + 0.02
        else:
            while in_flight and in_flight[0][0] <= t:
                arrival, n = heapq.heappop(in_flight)
                recorder.record(n, int((arrival + RECEIVER_CLOCK) * 1e6))
            for data in recorder.build(0x1234):
                if rng.random() < s.feedback_lost:
                    continue
                for _ in range(2 if rng.random() < s.feedback_twice else 1):
                    order += 1
                    heapq.heappush(deliveries, (t + s.delay(t), order, data))
            next_build = t + FEEDBACK_INTERVAL
        for size in sent:  # one fan-out: one send record for the burst
            arrival = link.send(t, size)
            history.sent(seq, size, t)
            if arrival is not None:
                if rng.random() < s.reorder:
                    arrival += 0.012
                heapq.heappush(in_flight, (arrival, seq))
            seq = (seq + 1) & 0xFFFF
    final = [est.packets_acked, est.packets_lost, est.feedbacks, est.received_rate,
             est.sent_rate, est.rtt, est.loss, est._detector.threshold, est._detector.trend]
    return estimates, usage, final


# PINNED: computed with the estimator of 9caf0ee (see the docstring); do not regenerate.
PINNED: dict[str, tuple[list[int], str, list[float]]] = {
    'capacity step down and up': (
        [301000, 309001, 317216, 325648, 334305, 343192, 352316, 361681, 371296, 381167,
         391300, 401702, 412380, 423343, 434597, 446150, 458010, 470186, 482685, 495517,
         508690, 522212, 536095, 550346, 564976, 579995, 595414, 611242, 627491, 644172,
         661297, 678876, 696923, 715450, 734469, 753994, 774038, 794615, 815739, 837424,
         859686, 882539, 906000, 930085, 954810, 980192, 1006250, 1032999, 1060460, 1088651,
         1117591, 1147301, 1177801, 1209111, 1241253, 1274250, 1308125, 1342899, 1378598,
         1415247, 1452869, 1491492, 1531141, 1571844, 1613629, 1656526, 1700562, 1745769,
         1792178, 1839821, 1888730, 1938939, 1990483, 2043398, 2097718, 2153483, 2210731,
         2269500, 1701706, 1701706, 1701706, 1702706, 1702706, 1702706, 1703706, 1709356,
         1715057, 1720792, 1726573, 1732398, 1737428, 1742489, 1747582, 1752703, 1757853,
         1763030, 1768221, 1773439, 1778670, 1783914, 1789077, 1793884, 1798257, 871743,
         871743, 477380, 477380, 420359, 355895, 355895, 355895, 355895, 355895, 355895,
         354437, 354437, 354437, 354437, 354437, 354437, 354437, 354437, 354437, 354437,
         354437, 354437, 354437, 354437, 354437, 355437, 355437, 355437, 356437, 356437,
         356437, 356437, 357437, 359228, 359228, 359228, 360228, 360228, 360228, 360228,
         361228, 363679, 366234, 368890, 371648, 374504, 377456, 380504, 383643, 386872,
         390189, 393591, 397075, 400640, 404284, 408004, 411798, 415622, 419455, 423300,
         427159, 354058, 354058, 355058, 358266, 358266, 358266, 359266, 362653, 366102,
         369610, 373176, 376799, 380478, 384211, 387999, 391849, 391849, 391849, 392849,
         396825, 400857, 404945, 409086, 413283, 417533, 421836, 426193, 430604, 435067,
         439584, 444154, 448777, 453453, 458183, 470364, 482868, 495704, 508882, 522409,
         536297, 550554, 565189, 580214, 595638, 611473, 627728, 644415, 661546, 679132,
         697186, 715720, 734746, 754279, 774330, 794915, 816046, 837740, 860010, 882872,
         906342, 930436, 955171, 980562, 1006629, 1033389, 1060861, 1089062, 1118013, 1147734,
         1178245, 1209567, 1241722, 1274731, 1308618, 1343406, 1379119, 1415781, 1453417,
         1492055, 1531719, 1572437, 1614239, 1657151, 1701204, 1746428, 1792855, 1840515,
         1889443, 1939671, 1991235, 2044169, 2098510, 2154296, 2211565, 2270357, 2330711,
         2392670, 2456276, 2521573, 2588605, 2657420, 2728064, 2800585, 2116761, 2116761,
         2116761, 2117761, 2117761, 2117761, 2118761, 2124067, 2129412, 2134793, 2140210,
         2145660, 2151142, 2156654, 2162194, 2167762, 2173357, 2178976, 2184620, 2190288,
         2195978, 2201690, 2207424, 2213179, 2218954, 2224749, 2230564, 2236397, 2242250,
         2248121, 2254011],
        ('nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnooonuun'
         'nnnnnnnnnnnnnnnnnnoooooooooonnuuuuuuuuuuuuuunuunuuunnuunuuunnnnnnnnnnnnnnnnnnnnnoonnu'
         'unnnnnnnnnnuunnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'
         'nnnnnnnnnnnnnooonuunnnnnnnnnnnnnnnnnnnnnnnnn'),
        [5075, 78, 299, 2264229, 2251775, 0.059047758754924004, 0.0, 6.0, -0.5180605036625667]),
    'delay ramp': (
        [301000, 309001, 317216, 325648, 334305, 343192, 352316, 361681, 371296, 381167,
         391300, 401702, 412380, 423343, 434597, 446150, 458010, 470186, 482685, 495517,
         508690, 522212, 536095, 550346, 564976, 579995, 595414, 611242, 627491, 644172,
         661297, 678876, 696923, 715450, 734469, 753994, 774038, 794615, 815739, 837424,
         859686, 882539, 906000, 930085, 954810, 980192, 1006250, 1032999, 1060460, 1088651,
         1117591, 1147301, 1177801, 1209111, 1241253, 1274250, 1308125, 1342899, 1378598,
         1415247, 1452869, 1491492, 1531141, 1571844, 1613629, 1656526, 1700562, 1745769,
         1792178, 1839821, 1888730, 1938939, 1990483, 2043398, 2097718, 2153483, 2210731,
         2269500, 2329832, 2391767, 2457927, 2525917, 2595788, 2667592, 2041338, 2041338,
         2041338, 2035182, 1974977, 1870037, 1773547, 1663665, 1663665, 1639710, 1640710,
         1644893, 1648973, 1460594, 1460594, 1368851, 1368851, 1307199, 1308199, 1311416,
         1226519, 1226519, 1171710, 1172710, 1175257, 1177745, 1180181, 1182568, 991884,
         991884, 991884, 991884, 954141, 954141, 904177, 905177, 907014, 908823, 910609,
         912374, 914121, 915853, 917572, 919279, 920977, 922666, 924348, 926024, 927695,
         929362, 931025, 932685, 934343, 936000, 937655, 939309, 940963, 942616, 944270,
         945925, 947579, 949235, 950892, 952551, 954210, 955872, 957535, 959200, 960867,
         962535, 964206, 965880, 967555, 969233, 970913, 972596, 974281, 975969, 977659,
         979352, 981048, 982746, 984447, 986151, 987858, 989567, 991279, 992994, 994712,
         996433, 998157, 999883, 1001612, 1003345, 1005080, 1006818, 1008559, 1010304, 1012051,
         1013801, 1015554, 1017310, 1019069, 1020831, 1022596, 1024364, 1026136, 1027910,
         1029687, 1031467, 1033251, 1035037, 1036827, 1038620],
        ('nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnno'
         'oooooooonnnnoooonnnooonnnnnoooooonnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'
         'nnnnnnnnnnnnnnnnnnnnnnnnnnnn'),
        [3496, 0, 198, 1062615, 1061241, 0.38197859838248155, 0.0, 6.0, 0.02380679554254887]),
    'random loss': (
        [301000, 309001, 317216, 325648, 334305, 343192, 352316, 361681, 371296, 381167,
         391300, 401702, 412380, 423343, 434597, 446150, 458010, 470186, 482685, 495517,
         508690, 508690, 508690, 508690, 508690, 508690, 508690, 508690, 508690, 508690,
         508690, 678876, 696923, 715450, 734469, 753994, 774038, 794615, 815739, 837424,
         859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686,
         859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686,
         859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686,
         859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686, 859686,
         859686, 859686, 859686, 859686, 859686, 1309372, 1344179, 1379913, 1416596, 1454254,
         1492913, 1532600, 1573342, 1615168, 1658105, 1702183, 1702183, 1702183, 1702183,
         1702183, 1702183, 1702183, 1702183, 1702183, 1702183, 1702183, 1702183, 1702183,
         1702183, 1702183, 1702183, 1702183, 1702183, 1702183, 1702183, 1702183, 1702183,
         1702183, 1702183, 1702183, 1702183, 1702183, 1257643, 1188863, 1128805, 1054938,
         1054938, 1054938, 1054938, 1054938, 1054938, 1054938, 1054938, 1054938, 1054938,
         1054938, 1054938, 1054938, 1054938, 1054938, 1094660, 1099791, 1104991, 1110259,
         1115602, 1121006, 1126468, 1131986, 1137569, 1143203, 1148886, 1154617, 1159238,
         1163891, 1168574, 1173286, 1178026, 1182795, 1187601, 1192433, 1197291, 1202173,
         1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173,
         1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173,
         1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173,
         1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173, 1202173,
         1202173, 1202173, 1202173, 1202173, 1420959, 1426678, 1432332, 1035301, 1035301,
         1035301, 1036301, 1041004, 1041004, 1041004, 1041004, 1041004, 1041004, 1041004,
         1041004, 1041004, 1041004, 1041004, 1041004, 1041004, 1088459, 1093873, 1099333,
         1104847, 1110404, 1116001, 1121650, 1127336, 1133060, 1138833, 1144641, 1150484,
         1156361, 1161090, 1165852, 1170635, 1175439, 1180265, 1185111, 1189978, 1194866,
         1199776, 1204706, 1209657, 1214629, 1219622, 1224636],
        ('nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'
         'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnoooonnuuuuunnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'
         'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnooonnuuunnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'),
        [4098, 122, 249, 1143336, 1211362, 0.06215532240452974, 0.011764705882352941, 6.0,
         1.8191596905974485]),
    'reordering, lost and repeated feedback, probes, held video': (
        [301000, 309001, 317216, 325648, 334305, 343192, 343192, 343192, 352316, 361681,
         298182, 295155, 288005, 289005, 291889, 294818, 297789, 300804, 303860, 303860,
         303860, 303860, 395018, 395018, 395018, 395018, 265735, 265735, 254025, 255025,
         260335, 265760, 271305, 225760, 222673, 223673, 228354, 233136, 238020, 243009,
         248105, 253310, 258626, 264055, 269600, 275263, 286829, 372877, 376796, 386812,
         397095, 397095, 407651, 429613, 441034, 441034, 452758, 464794, 477150, 477150,
         477150, 477150, 477150, 477150, 477150, 477150, 477150, 477150, 477150, 477150,
         620295, 620295, 620295, 620295, 620295, 620295, 620295, 620295, 620295, 620295,
         620295, 620295, 620295, 620295, 405240, 405240, 405240, 405240, 414834, 419199,
         423610, 556488, 556488, 364851, 364851, 365851, 369701, 373592, 377524, 381497,
         385513, 389570, 393671, 397805, 401983, 406206, 410474, 414788, 419148, 423555,
         428008, 432509, 437057, 441654, 446231, 450863, 301602, 301602, 302602, 305752,
         284669, 278760, 279760, 285606, 291578, 294629, 297714, 300832, 303985, 307172,
         310394, 313651, 313651, 313651, 313651, 313651, 313651, 313651, 313651, 313651,
         313651, 313651, 407746, 407746, 420670, 425055, 429480, 429480, 433945, 367766,
         365077, 366077, 369869, 373651, 373651, 377474, 381339, 385244, 389192, 393182,
         401245, 273135, 273135, 270628, 271628, 282674, 367476, 371220, 234241, 234241,
         235241, 240008, 240008, 240008, 240008, 240008, 240008, 240008, 240008, 240008,
         240008, 299431, 302496, 305595, 308727, 315057, 318288, 415066, 419325, 419325,
         421795, 433007, 433007, 443906, 226445, 226445, 227445, 233492, 239699, 246071,
         259328, 266222, 273299, 280564, 288023, 288023, 295679, 303539, 311609, 224767,
         224767, 225767, 230411, 235151, 239988, 244926, 249964, 203324, 203324, 203324,
         204324, 208536, 212834, 217221, 221696, 230831, 235586, 240439, 245391, 250444],
        ('nnnnnnnnnnooonnnnnnnnnnnnnooonnnnoonnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnno'
         'onnnnnnnoonnnnnnnnnnnnnnnnnnnnnoonnoonnnnnnnnnnnnnnnnnnnnnnnnnnnoonnnnnnnnnnooonnnnoo'
         'nnnnnnnnnnnnnnnnnnnnnnnnoonnnnnnnnnnnnnoonnnnnnooonnnnnnnnnn'),
        [1999, 22, 220, 236947, 233327, 0.06186550790888393, 0.0, 6.0, 0.7750107972893389]),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_estimates_are_those_pinned(name: str) -> None:
    estimates, usage, final = run(SCENARIOS[name])
    want_estimates, want_usage, want_final = PINNED[name]
    assert estimates == want_estimates
    assert usage == want_usage
    assert final[:5] == want_final[:5]  # counters and rates: integers
    assert final[5:] == pytest.approx(want_final[5:], rel=1e-12, abs=1e-15)


# Send-time steps near the 5 ms cut (its float test is what decides) and arrivals in ticks.
STEPS = st.sampled_from([0.0, 0.0001, 0.001, 0.004, 0.0049999999, 0.005, 0.0050000001, 0.02,
                         1 / 30, -0.003])


@given(st.lists(st.lists(st.tuples(STEPS, st.integers(-40, 400)), max_size=30), max_size=6),
       st.sampled_from([0.0, 0.1, 0.3, 1234.567]))
def test_groups_cut_by_bisection_are_those_packet_by_packet(
        feedbacks: list[list[tuple[float, int]]], start: float) -> None:
    """ArrivalGroups.add_many (bisection over send times in order, the latest arrival of a
    group by max of ticks) gives the groups, deltas and state of add_each, packet by packet,
    for sends in order or not (a negative step puts one out of order: the fallback)."""
    fast, each = ArrivalGroups(), ArrivalGroups()
    t, tick = start, 0
    for packets in feedbacks:
        sends, ticks = [], []
        for step_s, step_ticks in packets:
            t += step_s
            tick += step_ticks
            sends.append(t)
            ticks.append(tick)
        got = fast.add_many(sends, ticks, 7_000_000_123, 250)
        assert got == each.add_each(sends, [(7_000_000_123 + 250 * k) / 1e6 for k in ticks])
        assert [getattr(fast, a) for a in fast.__slots__] == \
            [getattr(each, a) for a in each.__slots__]


# A feedback about numbers around the last sent (arrivals in us, None: lost) and maybe a
# corrupted octet: well-formed ones reach the estimator, broken ones are refused.
FEEDBACK = st.tuples(st.integers(-400, 100), st.lists(st.one_of(
    st.none(), st.integers(0, 20_000_000)), min_size=1, max_size=40),
    st.tuples(st.integers(0, 200), st.integers(0, 255)) | st.none())


@given(st.lists(FEEDBACK, min_size=1, max_size=8), st.integers(0, 0xFFFF), st.booleans())
def test_any_feedback_that_parses_leaves_a_sane_estimate(
        feedbacks: list[tuple[int, list[int | None], tuple[int, int] | None]], last_sent: int,
        reset: bool) -> None:
    """Whatever a peer sends as transport-cc (parsed, or refused with ValueError as the
    transport counts it), the estimator takes it without an error and its estimate stays
    within its bounds: a bad peer cannot take the worker's feedback path down."""
    est, history = SendSideEstimator(), SendHistory()
    for k in range(300):  # sent, some of the ring left empty as after a path change
        if not reset or k % 7:
            history.sent((last_sent - 299 + k) & 0xFFFF, 1000 + k, 1.0 + k * 0.001)
    for i, (offset, arrivals, corrupt) in enumerate(feedbacks):
        if all(a is None for a in arrivals):
            arrivals[0] = 0
        try:
            fci = bytearray(build_feedback(1, 2, last_sent + offset, i, 0, arrivals)[12:])
        except ValueError:  # a delta our builder cannot write
            continue
        if corrupt is not None and corrupt[0] < len(fci):
            fci[corrupt[0]] = corrupt[1]
        try:
            feedback = parse_feedback(1, 2, bytes(fci))
        except ValueError:
            continue
        est.on_transport_cc(history, feedback, 2.0 + i * 0.1)
        assert MIN_RATE <= est.estimate <= MAX_RATE
        assert est.packets_acked + est.packets_lost <= 300 * (i + 1)
