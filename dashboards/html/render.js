/* dashboards.html: draws the boards' panels from the frames page.py embedded, with uPlot
 * (the library Grafana's own time-series panel draws with). Python did the querying and
 * the transformations; this file only draws, the way Grafana's panels do: units,
 * thresholds, value mappings, legends, stacking, annotations, the 24-column grid.
 *
 * For tests and screenshots it leaves markers in the DOM: every panel gets
 * data-state = drawn | nodata | error | unsupported and data-series = N; <body> gets
 * data-render = done, data-panels = N and data-errors = N once every panel was handled,
 * and script errors are listed in #render-errors.
 */
(function () {
  "use strict";
  var page = JSON.parse(document.getElementById("page-data").textContent);
  var scriptErrors = [];
  window.addEventListener("error", function (e) { scriptErrors.push(String(e.message)); });

  var NAMED = {
    green: "#73BF69", red: "#F2495C", blue: "#5794F2", orange: "#FF9830",
    yellow: "#FADE2A", purple: "#B877D9", "dark-orange": "#FA6400", "dark-red": "#C4162A",
    "dark-green": "#37872D", "dark-blue": "#1F60C4", "dark-yellow": "#E0B400",
    text: "#ccccdc", transparent: "rgba(0,0,0,0)"
  };
  // Grafana's classic palette (palette-classic), in its order.
  var PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1",
    "#BA43A9", "#705DA0", "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02",
    "#0A437C", "#6D1F62", "#584477", "#B7DBAB", "#F4D598", "#70DBED", "#F9BA8F"];
  var EVENT_COLORS = { fault: "#B877D9", firing: "#F2495C", resolved: "#73BF69" };
  var AXIS = { stroke: "#ccccdc", font: "11px Inter, Helvetica, Arial, sans-serif",
    grid: { stroke: "rgba(204,204,220,0.08)", width: 1 },
    ticks: { stroke: "rgba(204,204,220,0.08)", width: 1, size: 4 } };
  var RANGE = [page.range.from, page.range.to];

  function color(name) {
    if (!name) return NAMED.green;
    return NAMED[name] || name;
  }
  function alpha(hex, a) {
    var c = color(hex);
    if (c.charAt(0) !== "#" || c.length !== 7) return c;
    var n = parseInt(c.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // ---- units (Grafana's valueFormats, the ones the boards use) ------------------------
  function fixed(v, decimals) {
    if (decimals === null || decimals === undefined) {
      var a = Math.abs(v);
      decimals = a === 0 || a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
    }
    return Number(v.toFixed(decimals)).toString();
  }
  function scaled(v, decimals, factor, suffixes) {
    var i = 0;
    while (Math.abs(v) >= factor && i < suffixes.length - 1) { v /= factor; i++; }
    return fixed(v, decimals) + suffixes[i];
  }
  function seconds(v, d) {
    var a = Math.abs(v);
    if (a === 0) return "0 s";
    if (a < 1e-6) return fixed(v * 1e9, d) + " ns";
    if (a < 1e-3) return fixed(v * 1e6, d) + " µs";
    if (a < 1) return fixed(v * 1e3, d) + " ms";
    if (a < 60) return fixed(v, d) + " s";
    if (a < 3600) return fixed(v / 60, d) + " min";
    return fixed(v / 3600, d) + " hour";
  }
  var SHORT = ["", " K", " Mil", " Bil", " Tri"];
  var UNITS = {
    none: function (v, d) { return fixed(v, d); },
    short: function (v, d) { return scaled(v, d, 1000, SHORT); },
    s: seconds,
    ms: function (v, d) { return seconds(v / 1000, d); },
    percentunit: function (v, d) { return fixed(v * 100, d) + "%"; },
    percent: function (v, d) { return fixed(v, d) + "%"; },
    bytes: function (v, d) { return scaled(v, d, 1024, [" B", " KiB", " MiB", " GiB", " TiB"]); },
    Bps: function (v, d) { return scaled(v, d, 1000, [" B/s", " kB/s", " MB/s", " GB/s"]); },
    ops: function (v, d) { return scaled(v, d, 1000, SHORT) + " ops/s"; },
    reqps: function (v, d) { return scaled(v, d, 1000, SHORT) + " req/s"; },
    cps: function (v, d) { return scaled(v, d, 1000, SHORT) + " c/s"; }
  };
  function formatter(defaults) {
    var unit = UNITS[defaults.unit] || UNITS.short;
    var decimals = defaults.decimals;
    return function (v) { return v === null || v === undefined ? "" : unit(v, decimals); };
  }

  // ---- thresholds and value mappings -----------------------------------------------
  function steps(defaults) {
    return ((defaults.thresholds || {}).steps || []).slice();
  }
  function thresholdColor(defaults, v) {
    var c = null;
    steps(defaults).forEach(function (s) {
      if (s.value === null || s.value === undefined || v >= s.value) c = s.color;
    });
    return color(c || "green");
  }
  function mapping(defaults, v) {
    var maps = defaults.mappings || [];
    for (var i = 0; i < maps.length; i++) {
      var m = maps[i];
      if (m.type === "value" && m.options) {
        var hit = m.options[String(v)];
        if (hit === undefined && typeof v === "number") hit = m.options[fixed(v, 0)];
        if (hit && (typeof v !== "number" || String(Math.round(v)) === String(v))) return hit;
      }
    }
    return null;
  }
  function display(defaults, v) {
    var fmt = formatter(defaults);
    var hit = v === null || v === undefined ? null : mapping(defaults, v);
    return {
      text: hit && hit.text ? hit.text : fmt(v),
      color: hit && hit.color ? color(hit.color) : thresholdColor(defaults, v)
    };
  }

  // ---- reducers (stat and legend calcs) ---------------------------------------------
  var CALCS = {
    lastNotNull: function (vs) { for (var i = vs.length - 1; i >= 0; i--) if (vs[i] !== null) return vs[i]; return null; },
    last: function (vs) { return vs.length ? vs[vs.length - 1] : null; },
    max: function (vs) { var m = null; vs.forEach(function (v) { if (v !== null && (m === null || v > m)) m = v; }); return m; },
    min: function (vs) { var m = null; vs.forEach(function (v) { if (v !== null && (m === null || v < m)) m = v; }); return m; },
    mean: function (vs) { var s = 0, n = 0; vs.forEach(function (v) { if (v !== null) { s += v; n++; } }); return n ? s / n : null; },
    sum: function (vs) { var s = null; vs.forEach(function (v) { if (v !== null) s = (s || 0) + v; }); return s; }
  };
  var CALC_NAMES = { lastNotNull: "Last *", last: "Last", max: "Max", min: "Min", mean: "Mean", sum: "Total" };
  function calc(name, vs) { return (CALCS[name] || CALCS.lastNotNull)(vs); }
  function hasValue(vs) { return vs.some(function (v) { return v !== null; }); }

  // ---- annotations: the board's Prometheus ones and the run's own events ----------------
  function annotationsFor(board) {
    var out = [];
    board.annotations.forEach(function (a) {
      a.regions.forEach(function (r) {
        out.push({ from: r.from, to: r.to, color: color(a.color),
          text: r.title + (r.text ? ": " + r.text : ""), dashed: false });
      });
    });
    page.events.forEach(function (e) {
      out.push({ from: e.t, to: e.t, color: EVENT_COLORS[e.kind] || NAMED.blue,
        text: e.kind + ": " + e.text, dashed: true });
    });
    return out;
  }
  function annotationPlugin(notes) {
    return {
      hooks: {
        draw: function (u) {
          var ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
          ctx.save();
          notes.forEach(function (n) {
            var x0 = u.valToPos(n.from, "x", true), x1 = u.valToPos(n.to, "x", true);
            if (x1 < u.bbox.left || x0 > u.bbox.left + u.bbox.width) return;
            if (x1 - x0 > 1) { ctx.fillStyle = alpha(n.color, 0.1); ctx.fillRect(x0, top, x1 - x0, h); }
            ctx.strokeStyle = n.color;
            ctx.lineWidth = devicePixelRatio;
            ctx.setLineDash(n.dashed ? [4 * devicePixelRatio, 3 * devicePixelRatio] : []);
            [x0, x1 - x0 > 1 ? x1 : null].forEach(function (x) {
              if (x === null) return;
              ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
            });
          });
          ctx.restore();
        },
        ready: function (u) {
          notes.forEach(function (n) {
            var x = u.valToPos(n.from, "x");
            if (x < 0 || x > u.over.clientWidth) return;
            var m = el("div", "marker");
            m.style.left = x + "px";
            m.style.borderBottomColor = n.color;
            m.title = n.text;
            u.over.appendChild(m);
          });
        }
      }
    };
  }
  function thresholdPlugin(defaults) {
    var style = ((defaults.custom || {}).thresholdsStyle || {}).mode || "off";
    var lines = steps(defaults).filter(function (s) { return s.value !== null && s.value !== undefined; });
    return {
      hooks: {
        draw: function (u) {
          if (style === "off" || !lines.length) return;
          var ctx = u.ctx;
          ctx.save();
          ctx.lineWidth = devicePixelRatio;
          ctx.setLineDash(style.indexOf("dash") >= 0 ? [10 * devicePixelRatio, 10 * devicePixelRatio] : []);
          lines.forEach(function (s) {
            var y = u.valToPos(s.value, "y", true);
            if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) return;
            ctx.strokeStyle = color(s.color);
            ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
          });
          ctx.restore();
        }
      }
    };
  }
  function tooltipPlugin(names, fmt, colors) {
    var tip = el("div", "tooltip");
    return {
      hooks: {
        init: function (u) { u.over.appendChild(tip); },
        setCursor: function (u) {
          var i = u.cursor.idx;
          if (i === null || i === undefined || u.cursor.left < 0) { tip.style.display = "none"; return; }
          var rows = [];
          for (var s = 1; s < u.data.length; s++) {
            var v = u.data[s][i];
            if (v !== null && v !== undefined) rows.push([names[s - 1], v, colors[s - 1]]);
          }
          rows.sort(function (a, b) { return b[1] - a[1]; });
          tip.innerHTML = "";
          tip.appendChild(el("div", null, clock(u.data[0][i])));
          rows.slice(0, 12).forEach(function (r) {
            var line = el("div");
            var sw = el("span", "swatch"); sw.style.background = r[2];
            line.appendChild(sw); line.appendChild(document.createTextNode(r[0] + ": " + fmt(r[1])));
            tip.appendChild(line);
          });
          tip.style.display = rows.length ? "block" : "none";
          var left = u.cursor.left + 12;
          if (left + tip.offsetWidth > u.over.clientWidth) left = u.cursor.left - tip.offsetWidth - 12;
          tip.style.left = Math.max(0, left) + "px";
          tip.style.top = Math.max(0, u.cursor.top - 10) + "px";
        }
      }
    };
  }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function clock(t) {
    var d = new Date(t * 1000);
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }
  function xAxis() {
    return Object.assign({}, AXIS, { space: 70,
      values: function (u, splits) { return splits.map(clock); } });
  }
  function yAxis(fmt, size) {
    return Object.assign({}, AXIS, { size: size || 64, space: 28,
      values: function (u, splits) { return splits.map(fmt); } });
  }
  function noData(body, text) {
    body.appendChild(el("div", "nodata", text || "No data"));
  }
  function chartBox(body) {
    var box = el("div", "chart");
    body.appendChild(box);
    return box;
  }
  function size(box) {
    return { width: Math.max(50, box.clientWidth), height: Math.max(40, box.clientHeight) };
  }

  // ---- time series --------------------------------------------------------------------
  function legendTable(body, p, names, colors, values, fmt) {
    var opts = (p.options || {}).legend || {};
    if (opts.showLegend === false || opts.displayMode === "hidden" || !names.length) return;
    var wrap = el("div", "legend");
    if (opts.displayMode === "table") {
      var calcs = opts.calcs || [];
      var t = el("table"), head = el("tr");
      head.appendChild(el("th", "name", ""));
      calcs.forEach(function (c) { head.appendChild(el("th", null, CALC_NAMES[c] || c)); });
      t.appendChild(head);
      names.forEach(function (n, i) {
        var tr = el("tr"), td = el("td", "name");
        var sw = el("span", "swatch"); sw.style.background = colors[i];
        td.appendChild(sw); td.appendChild(document.createTextNode(n)); tr.appendChild(td);
        calcs.forEach(function (c) { tr.appendChild(el("td", null, fmt(calc(c, values[i])))); });
        t.appendChild(tr);
      });
      wrap.appendChild(t);
    } else {
      var list = el("div", "list");
      names.forEach(function (n, i) {
        var s = el("span"), sw = el("span", "swatch"); sw.style.background = colors[i];
        s.appendChild(sw); s.appendChild(document.createTextNode(n)); list.appendChild(s);
      });
      wrap.appendChild(list);
    }
    body.appendChild(wrap);
  }
  function timeseries(body, p, board) {
    var d = p.fieldConfig.defaults, custom = d.custom || {};
    var fmt = formatter(d);
    var series = p.series.filter(function (s) { return hasValue(s.values); });
    var colors = series.map(function (s, i) { return PALETTE[i % PALETTE.length]; });
    var values = series.map(function (s) { return s.values; });
    var drawn = values;
    if ((custom.stacking || {}).mode === "normal") {
      var acc = p.times.map(function () { return 0; });
      drawn = values.map(function (vs) {
        return vs.map(function (v, i) { if (v === null) return null; acc[i] += v; return acc[i]; });
      });
    }
    var box = chartBox(body);
    legendTable(body, p, series.map(function (s) { return s.name; }), colors, values, fmt);
    var lo = d.min === null || d.min === undefined ? null : d.min;
    var hi = d.max === null || d.max === undefined ? null : d.max;
    var fill = (custom.fillOpacity || 0) / 100;
    var opts = Object.assign(size(box), {
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: RANGE },
        y: { range: function (u, dmin, dmax) {
          var a = lo !== null ? lo : Math.min(0, dmin === null ? 0 : dmin);
          var b = hi !== null ? hi : dmax === null ? 1 : dmax;
          if (b <= a) b = a + 1;
          return [a, b * (hi !== null ? 1 : 1.05)];
        } }
      },
      axes: [xAxis(), yAxis(fmt)],
      series: [{}].concat(series.map(function (s, i) {
        return { label: s.name, stroke: colors[i], width: custom.lineWidth || 1,
          fill: fill ? alpha(colors[i], fill) : undefined, spanGaps: !!custom.spanNulls,
          points: { show: false } };
      })),
      plugins: [thresholdPlugin(d), annotationPlugin(annotationsFor(board)),
        tooltipPlugin(series.map(function (s) { return s.name; }), fmt, colors)]
    });
    if (!series.length) {
      opts.series = [{}, { stroke: "transparent" }];
      drawn = [p.times.map(function () { return null; })];
    }
    new uPlot(opts, [p.times].concat(drawn), box);
    if (!series.length) noData(box);
    return series.length;
  }

  // ---- state timeline -----------------------------------------------------------------
  function stateTimeline(body, p, board) {
    var d = p.fieldConfig.defaults, custom = d.custom || {}, o = p.options || {};
    var rows = p.series.filter(function (s) { return hasValue(s.values); });
    var names = rows.map(function (s) { return s.name; });
    var box = chartBox(body);
    var rowHeight = o.rowHeight || 0.9, fillA = (custom.fillOpacity === undefined ? 70 : custom.fillOpacity) / 100;
    var times = p.times, step = p.interval;
    var labelWidth = 12 + 6.5 * names.reduce(function (m, n) { return Math.max(m, n.length); }, 4);
    var opts = Object.assign(size(box), {
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false }, y: false },
      scales: { x: { time: true, range: RANGE }, y: { range: [0, Math.max(1, rows.length)] } },
      axes: [xAxis(), Object.assign({}, AXIS, { size: Math.min(260, labelWidth), grid: { show: false },
        font: "11px Inter, Helvetica, Arial, sans-serif",
        ticks: { show: false },
        splits: function () { return rows.map(function (r, i) { return rows.length - i - 0.5; }); },
        values: function () { return names; } })],
      series: [{}, { stroke: "transparent", paths: function () { return null; }, points: { show: false } }],
      plugins: [annotationPlugin(annotationsFor(board)), {
        hooks: { draw: function (u) {
          var ctx = u.ctx;
          ctx.save();
          rows.forEach(function (r, ri) {
            var yc = u.valToPos(rows.length - ri - 0.5, "y", true);
            var hpx = Math.abs(u.valToPos(0, "y", true) - u.valToPos(1, "y", true)) * rowHeight;
            var i = 0;
            while (i < r.values.length) {
              var v = r.values[i];
              var j = i + 1;
              while (j < r.values.length && r.values[j] === v && o.mergeValues !== false) j++;
              if (v !== null) {
                var x0 = u.valToPos(times[i], "x", true);
                var x1 = u.valToPos(j < times.length ? times[j] : times[j - 1] + step, "x", true);
                ctx.fillStyle = alpha(display(d, v).color, fillA);
                ctx.fillRect(x0, yc - hpx / 2, Math.max(1, x1 - x0), hpx);
              }
              i = j;
            }
          });
          ctx.restore();
        } }
      }]
    });
    // The legend: the value mappings' texts in their colours, as Grafana's list legend.
    var legend = el("div", "legend"), list = el("div", "list");
    (d.mappings || []).forEach(function (m) {
      Object.keys(m.options || {}).forEach(function (k) {
        var s = el("span"), sw = el("span", "swatch");
        sw.style.background = color(m.options[k].color || thresholdColor(d, Number(k)));
        s.appendChild(sw); s.appendChild(document.createTextNode(m.options[k].text || k)); list.appendChild(s);
      });
    });
    legend.appendChild(list);
    body.appendChild(legend);
    Object.assign(opts, size(box));
    // Labels shrink with the rows, as Grafana's do, so many rows stay readable.
    var perRow = (opts.height - 30) / Math.max(1, rows.length);
    opts.axes[1].font = Math.max(7, Math.min(11, Math.floor(perRow) - 1)) + "px Inter, Helvetica, Arial, sans-serif";
    new uPlot(opts, [times, times.map(function () { return null; })], box);
    if (!rows.length) noData(box);
    return rows.length;
  }

  // ---- heatmap ------------------------------------------------------------------------
  var ORANGES = [[58, 21, 4], [127, 39, 4], [217, 72, 1], [253, 141, 60], [253, 208, 162]];
  function ramp(t) {
    t = Math.max(0, Math.min(1, t)) * (ORANGES.length - 1);
    var i = Math.min(ORANGES.length - 2, Math.floor(t)), f = t - i;
    var a = ORANGES[i], b = ORANGES[i + 1];
    return "rgb(" + [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * f); }).join(",") + ")";
  }
  function heatmap(body, p, board) {
    var o = p.options || {}, d = p.fieldConfig.defaults;
    var floor = ((o.filterValues || {}).le);
    floor = floor === undefined ? 0 : floor;
    var buckets = ((p.heatmap || {}).buckets || []).filter(function (b) {
      return !(p.hideZeroBuckets !== false) || b.values.some(function (v) { return v !== null && v > floor; });
    });
    var fmt = formatter({ unit: (o.yAxis || {}).unit || d.unit });
    var max = 0;
    buckets.forEach(function (b) { b.values.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    var exponent = (o.color || {}).exponent || 0.5;
    var box = chartBox(body);
    var times = p.times, step = p.interval;
    var labels = buckets.map(function (b) { return b.le === "+Inf" ? "+Inf" : fmt(Number(b.le)); });
    var opts = Object.assign(size(box), {
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: { x: { time: true, range: RANGE }, y: { range: [0, Math.max(1, buckets.length)] } },
      axes: [xAxis(), Object.assign({}, AXIS, { size: 64, grid: { show: false },
        splits: function () { return buckets.map(function (b, i) { return i + 1; }); },
        values: function () { return labels; } })],
      series: [{}, { stroke: "transparent", paths: function () { return null; }, points: { show: false } }],
      plugins: [annotationPlugin(annotationsFor(board)), {
        hooks: { draw: function (u) {
          var ctx = u.ctx, gap = (o.cellGap || 1) * devicePixelRatio;
          ctx.save();
          buckets.forEach(function (b, bi) {
            var y0 = u.valToPos(bi + 1, "y", true), y1 = u.valToPos(bi, "y", true);
            b.values.forEach(function (v, i) {
              if (v === null || v <= floor || max <= 0) return;
              var x0 = u.valToPos(times[i] - step, "x", true), x1 = u.valToPos(times[i], "x", true);
              ctx.fillStyle = ramp(Math.pow(v / max, exponent));
              ctx.fillRect(x0, y0, Math.max(1, x1 - x0 - gap), Math.max(1, y1 - y0 - gap));
            });
          });
          ctx.restore();
        } }
      }]
    });
    if ((o.legend || {}).show !== false && buckets.length) {
      var scale = el("div", "scale"), bar = el("div", "bar");
      bar.style.background = "linear-gradient(to right," + [0, 0.25, 0.5, 0.75, 1].map(ramp).join(",") + ")";
      scale.appendChild(el("span", null, "0"));
      scale.appendChild(bar);
      scale.appendChild(el("span", null, fixed(max) + " /s"));
      body.appendChild(scale);
    }
    Object.assign(opts, size(box));
    new uPlot(opts, [times, times.map(function () { return null; })], box);
    if (!buckets.length) noData(box);
    return buckets.length;
  }

  // ---- stat and gauge -----------------------------------------------------------------
  function stat(body, p) {
    var d = p.fieldConfig.defaults, o = p.options || {};
    var calcName = ((o.reduceOptions || {}).calcs || ["lastNotNull"])[0];
    var series = p.series.filter(function (s) { return hasValue(s.values); });
    if (!series.length) {
      noData(body, d.noValue || "No data");
      return 0;
    }
    var row = el("div", "stat-row");
    body.appendChild(row);
    var tiles = series.map(function (s) {
      var v = calc(calcName, s.values), shown = display(d, v);
      var tile = el("div", "stat");
      if (o.textMode !== "value" && (o.textMode === "value_and_name" || series.length > 1)) {
        tile.appendChild(el("div", "name", s.name));
      }
      var value = el("div", "value", shown.text);
      var room = Math.max(40, body.clientWidth / series.length - 8);
      value.style.fontSize = Math.max(12, Math.min(34, body.clientHeight * 0.32,
        room / (0.62 * Math.max(1, shown.text.length)))) + "px";
      if (o.colorMode === "background") tile.style.background = shown.color;
      else value.style.color = shown.color;
      tile.appendChild(value);
      if (p.type === "gauge") {
        var hi = d.max === null || d.max === undefined ? 100 : d.max;
        var lo = d.min === null || d.min === undefined ? 0 : d.min;
        var bar = el("div", "scale"), fillBar = el("div", "bar");
        var share = Math.max(0, Math.min(1, (v - lo) / (hi - lo || 1)));
        fillBar.style.background = "linear-gradient(to right," + shown.color + " " + share * 100 + "%, rgba(204,204,220,0.1) " + share * 100 + "%)";
        bar.style.width = "80%"; bar.appendChild(fillBar); tile.appendChild(bar);
      }
      row.appendChild(tile);
      return [tile, s, shown.color];
    });
    if (o.graphMode === "area" && p.type === "stat") {
      tiles.forEach(function (t) {
        var spark = el("div", "spark");
        t[0].appendChild(spark);
        new uPlot(Object.assign(size(spark), {
          legend: { show: false }, cursor: { show: false },
          scales: { x: { time: false, range: RANGE } },
          axes: [{ show: false }, { show: false }],
          series: [{}, { stroke: t[2], fill: alpha(t[2], 0.15), width: 1, points: { show: false } }]
        }), [p.times, t[1].values], spark);
      });
    }
    return series.length;
  }

  // ---- table --------------------------------------------------------------------------
  function table(body, p) {
    var t = p.table || { columns: [], rows: [] };
    var d = p.fieldConfig.defaults;
    if (!t.rows.length) { noData(body); return 0; }
    var wrap = el("div", "tablewrap"), tab = el("table", "data");
    if ((p.options || {}).showHeader !== false) {
      var head = el("tr");
      t.columns.forEach(function (c) { head.appendChild(el("th", null, c)); });
      tab.appendChild(head);
    }
    t.rows.forEach(function (r) {
      var tr = el("tr");
      r.forEach(function (v) {
        var text = v === null || v === undefined ? "" : typeof v === "number" ? display(d, v).text : String(v);
        tr.appendChild(el("td", null, text));
      });
      tab.appendChild(tr);
    });
    wrap.appendChild(tab);
    body.appendChild(wrap);
    return t.rows.length;
  }

  function text(body, p) {
    var content = ((p.options || {}).content || "").trim();
    var box = el("div", "tablewrap", content);
    box.style.whiteSpace = "pre-wrap";
    body.appendChild(box);
    return content ? 1 : 0;
  }

  var DRAW = { timeseries: timeseries, graph: timeseries, "state-timeline": stateTimeline,
    heatmap: heatmap, stat: stat, gauge: stat, table: table, text: text };

  // ---- the page -----------------------------------------------------------------------
  function panelFrame(grid, board, p) {
    var g = p.gridPos || { x: 0, y: 0, w: 12, h: 8 };
    var box = el("section", "panel");
    box.style.gridColumn = (g.x + 1) + " / span " + g.w;
    box.style.gridRow = (g.y + 1) + " / span " + g.h;
    box.dataset.board = board.uid;
    box.dataset.panelId = p.id;
    box.dataset.type = p.type;
    box.dataset.title = p.title || "";
    var head = el("div", "head", p.title || "");
    if (p.description) head.title = p.description;
    box.appendChild(head);
    var body = el("div", "body");
    box.appendChild(body);
    grid.appendChild(box);
    return [box, body];
  }
  function drawPanel(grid, board, p) {
    if (p.type === "row") {
      var g = p.gridPos || { y: 0 };
      var r = el("section", "panel row-head", p.title || "");
      r.style.gridColumn = "1 / span 24";
      r.style.gridRow = (g.y + 1) + " / span 1";
      r.dataset.board = board.uid; r.dataset.type = "row"; r.dataset.state = "drawn"; r.dataset.series = "0";
      grid.appendChild(r);
      return;
    }
    var frame = panelFrame(grid, board, p), box = frame[0], body = frame[1];
    var draw = DRAW[p.type];
    if (p.errors && p.errors.length) {
      var corner = el("div", "err");
      corner.title = p.errors.join("\n");
      box.appendChild(corner);
      box.dataset.error = p.errors.join("\n");
    }
    if (!draw) {
      noData(body, "panel type " + p.type + " is not drawn here");
      box.dataset.state = "unsupported";
      return;
    }
    try {
      var n = draw(body, p, board);
      box.dataset.series = String(n);
      box.dataset.state = p.errors && p.errors.length ? "error" : n ? "drawn" : "nodata";
    } catch (err) {
      scriptErrors.push(p.title + ": " + (err && err.stack ? err.stack : err));
      box.dataset.state = "error";
      noData(body, "could not draw: " + err);
    }
  }
  function drawBoard(main, board) {
    var sec = el("section", "board");
    sec.id = board.uid;
    sec.dataset.annotations = String(board.annotations.reduce(function (n, a) { return n + a.regions.length; }, 0));
    sec.appendChild(el("h2", null, board.title));
    var bar = el("div", "varbar");
    Object.keys(board.variables).forEach(function (k) {
      var s = el("span"); s.appendChild(el("b", null, k)); s.appendChild(document.createTextNode(board.variables[k]));
      bar.appendChild(s);
    });
    board.annotations.forEach(function (a) {
      var s = el("span"), sw = el("span", "swatch"); sw.style.background = color(a.color);
      s.appendChild(sw); s.appendChild(document.createTextNode(a.name + " (" + a.regions.length + ")"));
      s.dataset.annotation = a.name; s.dataset.regions = String(a.regions.length);
      bar.appendChild(s);
    });
    sec.appendChild(bar);
    var grid = el("div", "grid");
    sec.appendChild(grid);
    main.appendChild(sec);
    return [sec, grid];
  }

  var only = new URLSearchParams(location.search).get("only");
  if (only) document.body.classList.add("only");
  var main = document.getElementById("boards");
  var count = 0;
  page.boards.forEach(function (board) {
    var made = drawBoard(main, board);
    if (only && board.uid === only) made[0].classList.add("shown");
    if (only && board.uid !== only) return;
    board.panels.forEach(function (p) { drawPanel(made[1], board, p); count++; });
  });
  document.body.dataset.panels = String(count);
  document.body.dataset.errors = String(scriptErrors.length);
  document.getElementById("render-errors").textContent = scriptErrors.join("\n");
  document.body.dataset.render = "done";
})();
