// The dashboard's charts, drawn with uPlot (web_client/vendor/, fetched from the npm registry at
// setup like hls.js; never from a CDN): a session's concurrency, a recording's views per second
// as the player's scrubber (click to play from there) and its drop-off curve.

const uPlot = window.uPlot;
const charts = new Map(); // element -> [uPlot, height]
const following = new Map(); // element -> its video's timeupdate listener

const AXIS = { stroke: '#9aa0a6', grid: { stroke: '#2a2f39', width: 1 }, ticks: { stroke: '#2a2f39', width: 1 } };
const BANDS = [ // [figure, colour, where]: along the bottom, the top, or the whole height
  ['unwatched', '#6b728066', 'all'], ['skipped', '#f59e0b', 'bottom'], ['rewatched', '#a855f7', 'top'],
];

function widthOf(el) {
  return Math.max(280, el.clientWidth || el.parentElement.clientWidth || 600);
}

function place(el, opts, data, height) {
  charts.get(el)?.[0].destroy();
  el.replaceChildren();
  const u = new uPlot({ width: widthOf(el), height, ...opts }, data, el);
  charts.set(el, [u, height]);
  return u;
}

function missing(el) { // web_client/vendor/ without uPlot: `make setup` fetches it
  el.textContent = 'No chart: the chart library (uPlot) is missing; `make setup` fetches it.';
  return null;
}

window.addEventListener('resize', () => {
  for (const [el, [u, height]] of charts) u.setSize({ width: widthOf(el), height });
});

/** 75 -> "1:15", 3675 -> "1:01:15" */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor(s / 60) % 60;
  return `${h ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(s % 60).padStart(2, '0')}`;
}

/** Participants present at once over the session (its `timeline`: [[epoch s, count]]). */
export function timelineChart(el, timeline) {
  if (!uPlot) return missing(el);
  const xs = timeline.map((p) => p[0]);
  const ys = timeline.map((p) => p[1]);
  return place(el, {
    scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(1, hi)] } },
    series: [{}, { label: 'present', stroke: '#3b82f6', fill: '#3b82f633', width: 2,
      paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }],
    axes: [AXIS, { ...AXIS, size: 50 }],
    cursor: { drag: { x: true, y: false } },
  }, [xs, ys], 180);
}

/** Views of each second, drawn as the scrubber of `video`: bands mark the unwatched, skipped
 * and re-watched ranges, a line the playing position; a click plays from there. */
export function heatChart(el, figures, video, readout) {
  if (!uPlot) return missing(el);
  const per = figures.perSecond;
  const n = per.length;
  const xs = Array.from({ length: n + 1 }, (_, i) => i);
  const ys = n ? [...per, per[n - 1]] : [0];
  const u = place(el, {
    scales: { x: { time: false, range: [0, Math.max(1, n)] },
      y: { range: (_, lo, hi) => [0, Math.max(1, hi) * 1.1] } },
    series: [{}, { label: 'views', stroke: '#ef4444', fill: '#ef444455', width: 1,
      paths: uPlot.paths.stepped({ align: 1 }) }],
    axes: [{ ...AXIS, values: (_, ticks) => ticks.map(clock) }, { ...AXIS, size: 50 }],
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, y: false, points: { show: false } },
    hooks: {
      draw: [(chart) => {
        const { ctx, bbox } = chart;
        const lane = Math.max(4, Math.round(bbox.height * 0.07));
        for (const [key, colour, where] of BANDS) {
          ctx.fillStyle = colour;
          const [top, height] = { all: [bbox.top, bbox.height], top: [bbox.top, lane],
            bottom: [bbox.top + bbox.height - lane, lane] }[where];
          for (const [a, b] of figures[key] || []) {
            const x0 = chart.valToPos(a, 'x', true);
            const x1 = chart.valToPos(b, 'x', true);
            ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
          }
        }
        if (video && Number.isFinite(video.currentTime)) { // the playing position
          const x = chart.valToPos(video.currentTime, 'x', true);
          ctx.fillStyle = '#e8eaed';
          ctx.fillRect(Math.round(x) - 1, bbox.top, 2, bbox.height);
        }
      }],
      setCursor: [(chart) => {
        const i = chart.cursor.idx;
        if (readout) readout.textContent = i == null || i >= n ? '' : `${clock(i)}: ${per[i]} view${per[i] === 1 ? '' : 's'}`;
      }],
    },
  }, [xs, ys], 150);
  u.over.addEventListener('click', (e) => {
    if (!video) return;
    video.currentTime = Math.min(Math.max(0, u.posToVal(e.offsetX, 'x')), Math.max(0, n - 0.5));
    video.play().catch(() => {});
  });
  if (video) { // the playing position follows the video (one listener per chart element)
    const follow = () => u.redraw(false, false);
    video.removeEventListener('timeupdate', following.get(el));
    following.set(el, follow);
    video.addEventListener('timeupdate', follow);
  }
  return u;
}

/** The share of views still watching past each second (`dropoff`: [[second, share]]). */
export function dropoffChart(el, dropoff) {
  if (!uPlot) return missing(el);
  const xs = dropoff.map((p) => p[0]);
  const ys = dropoff.map((p) => p[1] * 100);
  return place(el, {
    scales: { x: { time: false }, y: { range: [0, 100] } },
    series: [{ value: (_, v) => (v == null ? '' : clock(v)) },
      { label: '% of views still watching', stroke: '#22c55e', width: 2, points: { show: false },
        value: (_, v) => (v == null ? '' : `${v.toFixed(1)} %`) }],
    axes: [{ ...AXIS, values: (_, ticks) => ticks.map(clock) }, { ...AXIS, size: 52, values: (_, t) => t.map((v) => `${v}%`) }],
    cursor: { drag: { x: true, y: false } },
  }, [xs, ys], 180);
}
