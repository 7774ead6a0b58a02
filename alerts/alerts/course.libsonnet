// The course's own rules of thumb, as alerts of their own:
//   "An etcd with fsync above 25ms on average is an etcd about to have problems."
//   "Frequent leader changes (>1 per minute) indicate serious network or disk problems."
local u = import '../lib/utils.libsonnet';

{
  local c = $._config,
  local s = c.etcdSelector,

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'etcd-course',
        [if c.ruleInterval != null then 'interval']: c.ruleInterval,
        rules: [
          // The mean (rate of the sum / rate of the count), not a quantile: the course's
          // number is an average, and a mean has no bucket interpolation error.
          u.alert(
            'etcdWALFsyncSlow',
            'instance:etcd_disk_wal_fsync_duration_seconds:mean{%s} > %s' % [s, u.num(c.walFsyncSlow.averageSeconds)],
            c.walFsyncSlow['for'],
            c.walFsyncSlow.severity,
            'member',
            'The WAL fsync of an etcd member is slower than %d ms on average.' % std.floor(c.walFsyncSlow.averageSeconds * 1000 + 0.5),
            '%s: WAL fsync takes {{ $value | humanizeDuration }} on average over the last %s (the course: above %d ms means trouble).' % [u.inMember(c), c.recordingWindow, std.floor(c.walFsyncSlow.averageSeconds * 1000 + 0.5)],
          ),
          // Counted once per cluster (the largest per-member count of changes seen in the
          // window, see u.eventCount), averaged over the window.
          u.alert(
            'etcdLeaderChangesTooFrequent',
            'cluster:etcd_server_leader_changes_seen:per_minute{%s} > %s' % [s, u.num(c.leaderChangesTooFrequent.perMinute)],
            c.leaderChangesTooFrequent['for'],
            c.leaderChangesTooFrequent.severity,
            'cluster',
            'An etcd cluster changes leader too often.',
            '%s: {{ $value | printf "%%.2f" }} leader changes per minute over the last %s (job {{ $labels.job }}); the network or the disks are failing the cluster.' % [u.inCluster(c), c.leaderChangesTooFrequent.window],
          ),
        ],
      },
    ],
  },
}
