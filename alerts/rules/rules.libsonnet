// Recording rules shared by the alerts and the dashboards (level:metric:operations).
// Names carry no window: the window is _config.recordingWindow (5m; seconds in the lab
// variant), so one dashboard reads both the normal and the lab rules.
local u = import '../lib/utils.libsonnet';

{
  local c = $._config,
  local s = c.etcdSelector,
  local p99(metric, window) =
    'histogram_quantile(0.99, rate(%s_bucket{%s}[%s]))' % [metric, s, window],
  // rate(sum) / rate(count): the true mean over the window. Members with no observation in
  // the window get no sample rather than NaN.
  local mean(metric, window) =
    'rate(%(m)s_sum{%(s)s}[%(w)s])\n/\n(rate(%(m)s_count{%(s)s}[%(w)s]) > 0)' % { m: metric, s: s, w: window },

  prometheusRules+:: {
    groups+: [
      {
        name: 'etcd.rules',
        [if c.ruleInterval != null then 'interval']: c.ruleInterval,
        rules: [
          {
            record: 'instance:etcd_disk_wal_fsync_duration_seconds:p99',
            expr: p99('etcd_disk_wal_fsync_duration_seconds', c.recordingWindow),
          },
          {
            record: 'instance:etcd_disk_wal_fsync_duration_seconds:mean',
            expr: mean('etcd_disk_wal_fsync_duration_seconds', c.recordingWindow),
          },
          {
            record: 'instance:etcd_disk_backend_commit_duration_seconds:p99',
            expr: p99('etcd_disk_backend_commit_duration_seconds', c.recordingWindow),
          },
          {
            record: 'instance:etcd_disk_backend_commit_duration_seconds:mean',
            expr: mean('etcd_disk_backend_commit_duration_seconds', c.recordingWindow),
          },
          {
            // One series per (member, peer): the To label names the peer.
            record: 'instance_peer:etcd_network_peer_round_trip_time_seconds:p99',
            expr: p99('etcd_network_peer_round_trip_time_seconds', c.recordingWindow),
          },
          {
            // Entries committed but not yet applied to the state machine. Both families are
            // gauges despite the _total suffix (etcd sets them to the raft indexes).
            record: 'instance:etcd_server_proposals_commit_apply_lag:sub',
            expr: |||
              etcd_server_proposals_committed_total{%(s)s}
              -
              etcd_server_proposals_applied_total{%(s)s}
            ||| % { s: s },
          },
          {
            // Database file size as a fraction of the backend quota (NOSPACE at 1).
            // last_over_time rides out a missed scrape.
            record: 'instance:etcd_mvcc_db_total_size_in_bytes:quota_ratio',
            expr: |||
              last_over_time(etcd_mvcc_db_total_size_in_bytes{%(s)s}[%(w)s])
              /
              last_over_time(etcd_server_quota_backend_bytes{%(s)s}[%(w)s])
            ||| % { s: s, w: c.recordingWindow },
          },
          {
            // Leader changes per minute, once per cluster: every member sees each change, so
            // the maximum over members of each member's own count counts it once, and a
            // restarted member's counter reset is handled per series. The changes seen in the
            // window divided by its length in minutes, not 60 * rate(): rate() extrapolates
            // to the window's edges and read a steady 1 change a minute scraped every 25-30 s
            // as 1.09-1.11 (see u.eventCount).
            record: 'cluster:etcd_server_leader_changes_seen:per_minute',
            expr: 'max without (%(i)s) (%(count)s) / %(minutes)s' % {
              i: c.instanceLabels,
              count: u.eventCount('etcd_server_leader_changes_seen_total', s, c.leaderChangesTooFrequent.window),
              minutes: u.num(u.seconds(c.leaderChangesTooFrequent.window) / 60),
            },
          },
          {
            // Fraction of gRPC calls per member and method that failed on the server side.
            // Client cancels of long-lived Watch / LeaseKeepAlive streams are removed, and
            // methods with traffic but no failure record 0.
            record: 'instance_grpc_method:grpc_server_handled:error_ratio',
            expr: |||
              (
                sum without (grpc_type, grpc_code) (
                  rate(grpc_server_handled_total{%(s)s, grpc_code=~"%(codes)s"}[%(w)s])
                  unless
                  rate(grpc_server_handled_total{%(s)s, grpc_method=~"%(streams)s", grpc_code=~"%(cancels)s"}[%(w)s])
                )
                or
                0 * sum without (grpc_type, grpc_code) (rate(grpc_server_handled_total{%(s)s}[%(w)s]))
              )
              /
              (sum without (grpc_type, grpc_code) (rate(grpc_server_handled_total{%(s)s}[%(w)s])) > 0)
            ||| % {
              s: s,
              w: c.failedGRPCRequests.window,
              codes: c.failedGRPCRequests.failureCodes,
              streams: c.failedGRPCRequests.streamMethods,
              cancels: c.failedGRPCRequests.streamCancelCodes,
            },
          },
        ],
      },
    ],
  },
}
