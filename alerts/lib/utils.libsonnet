// Small builders shared by the alert files, so every alert has the same shape:
// severity and scope labels, a static summary and a templated description.
{
  // A number as PromQL text: '%s' prints 0.025 as 0.025000000000000001 (17 digits); 12
  // significant digits print every threshold here exactly as written in _config.
  num(x):: '%.12g' % x,
  // A duration of the form <integer><s|m|h> ('30s', '5m', '4h') in seconds.
  seconds(d)::
    local unit = { s: 1, m: 60, h: 3600 }[d[std.length(d) - 1]];
    std.parseInt(d[:std.length(d) - 1]) * unit,

  // The number of events a counter of events (integer steps: leader changes, failed
  // proposals, slow applies) recorded within `window`, as PromQL text.
  //
  // increase() is not that count. Over the samples of one series inside the window it takes
  // the reset-adjusted delta from the first to the last sample, an integer n (a restarted
  // member's fresh counter counts from 0), and multiplies it by the extrapolation factor
  // f = (last - first sample + the edges it extrapolates over) / (last - first sample), with
  // 1 <= f <= window / (last - first sample). With a scrape interval d that divides the
  // window and samples off the evaluation grid, f = window / (window - d): 3 changes in 15m
  // scraped every 25 s read 3.09 and `> 3` fired.
  //
  // floor() gives n back: f >= 1 so floor(n * f) >= n (never an undercount), and
  // floor(n * f) = n while n * (f - 1) < 1. `floor(...) > N` therefore fires exactly when
  // n > N as long as N * (f - 1) < 1, i.e. N < window / d - 1. At the configured thresholds
  // that holds for scrape intervals below 50 s (5 leader changes in 5m), 54 s (10 slow
  // applies in 10m), 100 s (5 late heartbeats or slow/failed read indexes in 10m) and 150 s
  // (5 failed proposals or 5 members' worth of leader changes in 15m); the lab scrapes every
  // second (its tightest bound, 10 slow applies in 20s, needs under 1.8 s). A scrape interval
  // that does not divide the window can leave up to 2 d uncovered: halve the bounds. Past a
  // bound, a count exactly at the threshold can read one too many.
  //
  // No formulation is exact for every interval on Prometheus 2.x without feature flags:
  // `x - x offset w` and max/min_over_time break on counter resets, and changes() counts
  // scrapes with a change, not changes. The `anchored` range modifier of recent Prometheus 3
  // releases (increase(x[w] anchored)) does not extrapolate: use it once every Prometheus
  // that loads these rules has it. Either way, a change between the window's start and its
  // first sample is not seen yet (at most one scrape interval); the window slides over it.
  eventCount(metric, selector, window)::
    'floor(increase(%s{%s}[%s]))' % [metric, selector, window],
  // A template naming the cluster of the alert, e.g. {{ $labels.cluster }}.
  clusterRef(c):: '{{ $labels.%s }}' % c.clusterLabel,
  // A template naming the member (instance) of the alert.
  memberRef(c):: '{{ $labels.%s }}' % c.instanceLabel,
  // "etcd cluster X" and "member Y of etcd cluster X", the opening of every description.
  inCluster(c):: 'etcd cluster "%s"' % self.clusterRef(c),
  inMember(c):: 'member %s of etcd cluster "%s"' % [self.memberRef(c), self.clusterRef(c)],

  // One alerting rule. scope is member (one member's series), cluster (aggregated over
  // the members of a cluster) or global (no cluster label at all); Alertmanager's
  // inhibitions use it to silence member-level noise under a cluster-level outage.
  alert(name, expr, forDuration, severity, scope, summary, description):: {
    alert: name,
    expr: expr,
    'for': forDuration,
    labels: { severity: severity, scope: scope },
    annotations: { summary: summary, description: description },
  },
}
