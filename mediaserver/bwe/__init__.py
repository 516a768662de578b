"""Send-side bandwidth estimation of the GCC family (libwebrtc, pion `pkg/gcc`).

Pure: no I/O, no clock of its own; time comes in with every call. What a transport uses:

- `history.SendHistory`: (send time, size) of each packet sent, by transport-wide sequence
  number, in a fixed ring;
- `estimator.SendSideEstimator`: fed the packets a transport-cc feedback covers, keeps
  `estimate` (bit/s), the minimum of a delay-based estimate (`delay.py`: arrival groups, a
  trendline filter of the one-way delay gradient, an overuse detector with an adaptive
  threshold; `rate.py`: the AIMD rate controller) and a loss-based one (`rate.py`);
- `native.py`: all of that for one feedback in one C call (mediaserver/native/bwe.c), what
  production runs; the Python above is the reference it is tested against.
"""
