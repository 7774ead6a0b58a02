// Raft health that no public etcd mixin ships: apply lag, proposal queues, late
// heartbeats, slow applies and reads, split leadership, member counts, alarms, file
// descriptors and missing scrape targets.
local u = import '../lib/utils.libsonnet';

{
  local c = $._config,
  local s = c.etcdSelector,
  local i = c.instanceLabels,

  // More than `max` events of a counter within the window, one member at a time (counted,
  // not extrapolated: see u.eventCount).
  local counterAlert(name, metric, cfg, max, summary, what) = u.alert(
    name,
    '%s > %s' % [u.eventCount(metric, s, cfg.window), max],
    cfg['for'],
    cfg.severity,
    'member',
    summary,
    '%s: {{ $value | printf "%%.0f" }} %s within the last %s.' % [u.inMember(c), what, cfg.window],
  ),

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'etcd-raft',
        [if c.ruleInterval != null then 'interval']: c.ruleInterval,
        rules: [
          // Committed entries pile up unapplied: the backend (disk) or the apply loop is
          // stuck, and linearizable reads wait for the apply index.
          u.alert(
            'etcdCommitApplyLagGrowing',
            |||
              instance:etcd_server_proposals_commit_apply_lag:sub{%(s)s} > %(n)s
              and
              deriv(instance:etcd_server_proposals_commit_apply_lag:sub{%(s)s}[%(w)s]) > 0
            ||| % { s: s, n: u.num(c.commitApplyLag.minEntries), w: c.commitApplyLag.growthWindow },
            c.commitApplyLag['for'],
            c.commitApplyLag.severity,
            'member',
            'An etcd member applies committed entries slower than they commit.',
            '%s: {{ $value | printf "%%.0f" }} committed entries are not applied yet, and the gap keeps growing.' % u.inMember(c),
          ),
          // A queue of proposals that keeps growing: more load than the cluster can commit,
          // or no commit at all (no quorum, slow disk).
          u.alert(
            'etcdProposalsPendingGrowing',
            |||
              etcd_server_proposals_pending{%(s)s} > %(n)s
              and
              deriv(etcd_server_proposals_pending{%(s)s}[%(w)s]) > 0
            ||| % { s: s, n: u.num(c.proposalsPending.minPending), w: c.proposalsPending.growthWindow },
            c.proposalsPending['for'],
            c.proposalsPending.severity,
            'member',
            'Pending proposals of an etcd member keep growing.',
            '%s: {{ $value | printf "%%.0f" }} proposals are pending and the queue keeps growing.' % u.inMember(c),
          ),
          counterAlert(
            'etcdHeartbeatSendFailures',
            'etcd_server_heartbeat_send_failures_total',
            c.heartbeatSendFailures,
            u.num(c.heartbeatSendFailures.maxFailures),
            'An etcd leader sends heartbeats late.',
            'leader heartbeats were sent late (over twice the heartbeat interval, usually a slow disk)',
          ),
          counterAlert(
            'etcdSlowApplies',
            'etcd_server_slow_apply_total',
            c.slowApplies,
            u.num(c.slowApplies.maxSlow),
            'An etcd member applies entries slowly.',
            'applies took longer than the warning apply duration',
          ),
          counterAlert(
            'etcdSlowReadIndexes',
            'etcd_server_slow_read_indexes_total',
            c.slowReadIndexes,
            u.num(c.slowReadIndexes.maxSlow),
            'Linearizable reads on an etcd member are slow.',
            'ReadIndex requests were answered late or timed out',
          ),
          counterAlert(
            'etcdFailedReadIndexes',
            'etcd_server_read_indexes_failed_total',
            c.failedReadIndexes,
            u.num(c.failedReadIndexes.maxFailed),
            'Linearizable reads on an etcd member fail.',
            'ReadIndex requests failed',
          ),
          // Split leadership: a deposed leader that never stepped down (no CheckQuorum, or a
          // partition) keeps accepting proposals it can never commit.
          u.alert(
            'etcdMultipleLeaders',
            'sum without (%s) (etcd_server_is_leader{%s}) > 1' % [i, s],
            c.multipleLeaders['for'],
            c.multipleLeaders.severity,
            'cluster',
            'An etcd cluster has more than one leader.',
            '%s: {{ $value }} members report that they are the leader (job {{ $labels.job }}).' % u.inCluster(c),
          ),
          // Voting members = scrape targets minus learners. A down member still has an `up`
          // series, so one failure does not flip the parity.
          u.alert(
            'etcdEvenNumberOfMembers',
            |||
              (
                count without (%(i)s) (up{%(s)s})
                - (count without (%(i)s) (etcd_server_is_learner{%(s)s} == 1) or 0 * count without (%(i)s) (up{%(s)s}))
              ) %% 2 == 0
            ||| % { i: i, s: s },
            c.evenNumberOfMembers['for'],
            c.evenNumberOfMembers.severity,
            'cluster',
            'An etcd cluster has an even number of voting members.',
            '%s has an even number of voting members (job {{ $labels.job }}): the extra member adds latency and no fault tolerance; run 3 or 5.' % u.inCluster(c),
          ),
          // A learner catches up by snapshot and log within seconds; one still short of
          // what etcd demands before a promotion (its log at `inSyncRatio` of the leader's
          // committed index) long after it joined is stuck: its peer link, its disk, or a
          // snapshot it cannot receive. Applied index (the learner's own) against the
          // leader's committed index: both etcd 3.4 and raftmon export them as gauges.
          u.alert(
            'etcdLearnerNotCatchingUp',
            |||
              (etcd_server_proposals_applied_total{%(s)s} and on (%(m)s) (etcd_server_is_learner{%(s)s} == 1))
              < on (%(cl)s, job) group_left
              %(r)s * max without (%(i)s) (etcd_server_proposals_committed_total{%(s)s} and on (%(m)s) (etcd_server_is_leader{%(s)s} == 1))
            ||| % { i: i, s: s, m: c.memberMatchLabels, cl: c.clusterLabel, r: u.num(c.learnerNotCatchingUp.inSyncRatio) },
            c.learnerNotCatchingUp['for'],
            c.learnerNotCatchingUp.severity,
            'member',
            'An etcd learner does not catch up with the leader.',
            '%s is a learner that has applied only {{ $value | printf "%%.0f" }} entries, less than %s%% of the leader\'s committed index: it cannot be promoted.' % [u.inMember(c), std.toString(c.learnerNotCatchingUp.inSyncRatio * 100)],
          ),
        ] + [
          // The alarm store is replicated: every member reports every alarm, so take the max
          // over members and keep server_id (the member the alarm is about).
          u.alert(
            alarm.name,
            'max without (%s) (%s{%s, alarm_type="%s"}) > 0' % [i, c.alarms.metric, s, alarm.type],
            c.alarms['for'],
            c.alarms.severity,
            'cluster',
            alarm.summary,
            '%s: alarm %s is raised for member {{ $labels.server_id }} (job {{ $labels.job }}); %s' % [u.inCluster(c), alarm.type, alarm.effect],
          )
          for alarm in [
            {
              name: 'etcdNoSpaceAlarm',
              type: 'NOSPACE',
              summary: 'An etcd cluster raised the NOSPACE alarm.',
              effect: 'the cluster accepts only reads and deletes until the alarm is disarmed.',
            },
            {
              name: 'etcdCorruptAlarm',
              type: 'CORRUPT',
              summary: 'An etcd cluster raised the CORRUPT alarm.',
              effect: 'a member data hash differs from its peers; writes are refused.',
            },
          ]
        ] + [
          u.alert(
            'etcdFileDescriptorsNearLimit',
            'os_fd_used{%s} / os_fd_limit{%s} > %s' % [s, s, tier.ratio],
            c.fdsNearLimit['for'],
            tier.severity,
            'member',
            'An etcd member is running out of file descriptors.',
            '%s uses {{ $value | humanizePercentage }} of its file descriptor limit.' % u.inMember(c),
          )
          for tier in [
            { ratio: u.num(c.fdsNearLimit.warningRatio), severity: c.fdsNearLimit.warningSeverity },
            { ratio: u.num(c.fdsNearLimit.criticalRatio), severity: c.fdsNearLimit.criticalSeverity },
          ]
        ] + [
          // Every other alert needs series to exist; this one catches their absence (targets
          // gone from service discovery, or a wrong selector). absent() has no cluster label.
          u.alert(
            'etcdTargetAbsent',
            'absent(up{%s} == 1)' % s,
            c.targetAbsent['for'],
            c.targetAbsent.severity,
            'global',
            'No etcd scrape target is up.',
            'No target matching {{ `{%s}` }} is up in Prometheus{{ with $labels.job }} (job {{ . }}){{ end }}: etcd is down or no longer scraped.' % s,
          ),
        ],
      },
    ],
  },
}
