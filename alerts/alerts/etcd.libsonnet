// etcd's own mixin alerts: same names where the condition is the same (routes and
// silences keep working), with its bugs fixed. See alerts/runbooks/<name>.md.
local u = import '../lib/utils.libsonnet';

{
  local c = $._config,
  local s = c.etcdSelector,
  local i = c.instanceLabels,

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'etcd',
        [if c.ruleInterval != null then 'interval']: c.ruleInterval,
        rules: [
          // Fixed: etcd's `up == bool 0 or <peer failures>` never used the peer branch,
          // because the `up` side always exists with the same labels. Both counts are now
          // tagged and the larger one wins.
          u.alert(
            'etcdMembersDown',
            |||
              max without (source) (
                label_replace(sum without (%(i)s) (up{%(s)s} == bool 0), "source", "up", "", "")
                or
                label_replace(
                  count without (To) (
                    sum without (%(i)s) (rate(etcd_network_peer_sent_failures_total{%(s)s}[%(w)s])) > %(r)s
                  ),
                  "source", "peers", "", ""
                )
              )
              > 0
            ||| % { i: i, s: s, w: c.membersDown.window, r: u.num(c.membersDown.peerFailuresPerSecond) },
            c.membersDown['for'],
            c.membersDown.severity,
            'cluster',
            'Members of an etcd cluster are down.',
            '%s: {{ $value }} member(s) are down or unreachable from their peers (job {{ $labels.job }}).' % u.inCluster(c),
          ),
          // Voters only: a learner neither votes nor counts towards quorum, so an up learner
          // must not hide a lost quorum, nor a learner still starting fake one. A member
          // removed from the cluster leaves the count when its target leaves discovery.
          u.alert(
            'etcdInsufficientMembers',
            |||
              sum without (%(i)s) ((up{%(s)s} == bool 1) unless on (%(m)s) (etcd_server_is_learner{%(s)s} == 1))
              < ((count without (%(i)s) (up{%(s)s} unless on (%(m)s) (etcd_server_is_learner{%(s)s} == 1)) + 1) / 2)
            ||| % { i: i, s: s, m: c.memberMatchLabels },
            c.insufficientMembers['for'],
            c.insufficientMembers.severity,
            'cluster',
            'An etcd cluster has lost quorum.',
            '%s: only {{ $value }} voting member(s) are up, fewer than a quorum; writes are refused (job {{ $labels.job }}).' % u.inCluster(c),
          ),
          u.alert(
            'etcdNoLeader',
            'etcd_server_has_leader{%s} == 0' % s,
            c.noLeader['for'],
            c.noLeader.severity,
            'member',
            'An etcd member has no leader.',
            '%s has no leader: it cannot serve writes or linearizable reads.' % u.inMember(c),
          ),
          // Fixed: counted once per cluster as the largest per-member count (resets handled
          // per series), the threshold scales with the member count, and the count is the
          // changes seen, not increase()'s extrapolation of them (see u.eventCount), so a
          // rolling restart of N members (at most N changes) stays silent for any N.
          u.alert(
            'etcdHighNumberOfLeaderChanges',
            |||
              max without (%(i)s) (%(count)s)
              > %(n)s * count without (%(i)s) (up{%(s)s})
            ||| % {
              i: i,
              s: s,
              count: u.eventCount('etcd_server_leader_changes_seen_total', s, c.highNumberOfLeaderChanges.window),
              n: u.num(c.highNumberOfLeaderChanges.changesPerMember),
            },
            c.highNumberOfLeaderChanges['for'],
            c.highNumberOfLeaderChanges.severity,
            'cluster',
            'An etcd cluster changed leader many times.',
            '%s: {{ $value | printf "%%.0f" }} leader changes within the last %s, more than %s per member (job {{ $labels.job }}).' % [u.inCluster(c), c.highNumberOfLeaderChanges.window, u.num(c.highNumberOfLeaderChanges.changesPerMember)],
          ),
        ] + [
          // Fixed: client cancels of Watch / LeaseKeepAlive streams no longer count (see the
          // recording rule).
          u.alert(
            'etcdHighNumberOfFailedGRPCRequests',
            'instance_grpc_method:grpc_server_handled:error_ratio{%s} > %s' % [s, tier.ratio],
            tier['for'],
            tier.severity,
            'member',
            'An etcd member fails many gRPC requests.',
            '%s: {{ $value | humanizePercentage }} of {{ $labels.grpc_service }}/{{ $labels.grpc_method }} requests failed over the last %s.' % [u.inMember(c), c.failedGRPCRequests.window],
          )
          for tier in [
            { ratio: u.num(c.failedGRPCRequests.warningRatio), 'for': c.failedGRPCRequests.warningFor, severity: c.failedGRPCRequests.warningSeverity },
            { ratio: u.num(c.failedGRPCRequests.criticalRatio), 'for': c.failedGRPCRequests.criticalFor, severity: c.failedGRPCRequests.criticalSeverity },
          ]
        ] + [
          // Fixed: reads etcd_server_request_duration_seconds (always exposed) and falls back
          // to grpc_server_handling_seconds (only with --metrics=extensive) for a member that
          // lacks it, so the alert can fire on a default install.
          u.alert(
            'etcdGRPCRequestsSlow',
            |||
              (
                histogram_quantile(0.99, sum without (success) (rate(etcd_server_request_duration_seconds_bucket{%(s)s}[%(w)s])))
                > %(req)s
              )
              or
              (
                histogram_quantile(0.99, sum without (grpc_type) (rate(grpc_server_handling_seconds_bucket{%(s)s, grpc_type="unary", grpc_method!~"%(ex)s"}[%(w)s])))
                > %(grpc)s
                unless on (%(m)s)
                etcd_server_request_duration_seconds_count{%(s)s}
              )
            ||| % { s: s, w: c.grpcRequestsSlow.window, req: tier.req, grpc: tier.grpc, ex: c.grpcRequestsSlow.grpcExcludedMethods, m: c.memberMatchLabels },
            tier['for'],
            tier.severity,
            'member',
            'An etcd member serves requests slowly.',
            '%s: p99 latency of {{ $labels.type }}{{ $labels.grpc_method }} requests is {{ $value | humanizeDuration }}.' % u.inMember(c),
          )
          for tier in [
            { req: u.num(c.grpcRequestsSlow.requestWarningSeconds), grpc: u.num(c.grpcRequestsSlow.grpcWarningSeconds), 'for': c.grpcRequestsSlow.warningFor, severity: c.grpcRequestsSlow.warningSeverity },
            { req: u.num(c.grpcRequestsSlow.requestCriticalSeconds), grpc: u.num(c.grpcRequestsSlow.grpcCriticalSeconds), 'for': c.grpcRequestsSlow.criticalFor, severity: c.grpcRequestsSlow.criticalSeverity },
          ]
        ] + [
          // Threshold moved to a bucket edge (etcd's 150 ms sat inside a bucket and flapped).
          u.alert(
            'etcdMemberCommunicationSlow',
            'instance_peer:etcd_network_peer_round_trip_time_seconds:p99{%s} > %s' % [s, u.num(c.memberCommunicationSlow.p99Seconds)],
            c.memberCommunicationSlow['for'],
            c.memberCommunicationSlow.severity,
            'member',
            'Round trips between etcd peers are slow.',
            '%s: p99 round-trip time to peer {{ $labels.To }} is {{ $value | humanizeDuration }}.' % u.inMember(c),
          ),
          // Fixed: a count over the window, not a per-second rate (and not increase()'s
          // extrapolation of the count, see u.eventCount).
          u.alert(
            'etcdHighNumberOfFailedProposals',
            '%s > %s' % [u.eventCount('etcd_server_proposals_failed_total', s, c.failedProposals.window), u.num(c.failedProposals.maxFailures)],
            c.failedProposals['for'],
            c.failedProposals.severity,
            'member',
            'An etcd member has many failed proposals.',
            '%s: {{ $value | printf "%%.0f" }} proposals failed within the last %s.' % [u.inMember(c), c.failedProposals.window],
          ),
        ] + [
          u.alert(
            'etcdHighFsyncDurations',
            'instance:etcd_disk_wal_fsync_duration_seconds:p99{%s} > %s' % [s, tier.seconds],
            c.highFsyncDurations['for'],
            tier.severity,
            'member',
            'The p99 WAL fsync latency of an etcd member is high.',
            '%s: p99 WAL fsync latency is {{ $value | humanizeDuration }}.' % u.inMember(c),
          )
          for tier in [
            { seconds: u.num(c.highFsyncDurations.warningSeconds), severity: c.highFsyncDurations.warningSeverity },
            { seconds: u.num(c.highFsyncDurations.criticalSeconds), severity: c.highFsyncDurations.criticalSeverity },
          ]
        ] + [
          u.alert(
            'etcdHighCommitDurations',
            'instance:etcd_disk_backend_commit_duration_seconds:p99{%s} > %s' % [s, tier.seconds],
            c.highCommitDurations['for'],
            tier.severity,
            'member',
            'The p99 backend commit latency of an etcd member is high.',
            '%s: p99 backend commit latency is {{ $value | humanizeDuration }}.' % u.inMember(c),
          )
          for tier in [
            { seconds: u.num(c.highCommitDurations.warningSeconds), severity: c.highCommitDurations.warningSeverity },
            { seconds: u.num(c.highCommitDurations.criticalSeconds), severity: c.highCommitDurations.criticalSeverity },
          ]
        ] + [
          // Tiers instead of one alert at 95 %.
          u.alert(
            'etcdDatabaseQuotaLowSpace',
            'instance:etcd_mvcc_db_total_size_in_bytes:quota_ratio{%s} > %s' % [s, tier.ratio],
            c.databaseQuotaLowSpace['for'],
            tier.severity,
            'member',
            'An etcd database is close to its quota.',
            '%s: the database uses {{ $value | humanizePercentage }} of its quota; at 100 %% etcd raises NOSPACE and refuses writes.' % u.inMember(c),
          )
          for tier in [
            { ratio: u.num(c.databaseQuotaLowSpace.infoRatio), severity: c.databaseQuotaLowSpace.infoSeverity },
            { ratio: u.num(c.databaseQuotaLowSpace.warningRatio), severity: c.databaseQuotaLowSpace.warningSeverity },
            { ratio: u.num(c.databaseQuotaLowSpace.criticalRatio), severity: c.databaseQuotaLowSpace.criticalSeverity },
          ]
        ] + [
          u.alert(
            'etcdExcessiveDatabaseGrowth',
            |||
              predict_linear(etcd_mvcc_db_total_size_in_bytes{%(s)s}[%(w)s], %(h)s)
              > etcd_server_quota_backend_bytes{%(s)s}
            ||| % { s: s, w: c.excessiveDatabaseGrowth.window, h: u.num(c.excessiveDatabaseGrowth.horizonSeconds) },
            c.excessiveDatabaseGrowth['for'],
            c.excessiveDatabaseGrowth.severity,
            'member',
            'An etcd database will reach its quota soon.',
            '%s: at the growth rate of the last %s the database reaches its quota within %s seconds.' % [u.inMember(c), c.excessiveDatabaseGrowth.window, u.num(c.excessiveDatabaseGrowth.horizonSeconds)],
          ),
          // The floor is on the bytes a defragmentation would give back, not on the bytes in
          // use: a small database with a high ratio is not worth a ticket.
          u.alert(
            'etcdDatabaseHighFragmentationRatio',
            |||
              (
                last_over_time(etcd_mvcc_db_total_size_in_use_in_bytes{%(s)s}[%(w)s])
                /
                last_over_time(etcd_mvcc_db_total_size_in_bytes{%(s)s}[%(w)s])
              ) < %(r)s
              and
              (
                last_over_time(etcd_mvcc_db_total_size_in_bytes{%(s)s}[%(w)s])
                -
                last_over_time(etcd_mvcc_db_total_size_in_use_in_bytes{%(s)s}[%(w)s])
              ) > %(b)s
            ||| % { s: s, w: c.recordingWindow, r: u.num(c.databaseHighFragmentationRatio.inUseRatio), b: u.num(c.databaseHighFragmentationRatio.minReclaimableBytes) },
            c.databaseHighFragmentationRatio['for'],
            c.databaseHighFragmentationRatio.severity,
            'member',
            'An etcd database is highly fragmented.',
            '%s: only {{ $value | humanizePercentage }} of the database file is in use; a defragmentation would give back the rest.' % u.inMember(c),
          ),
        ],
      },
    ],
  },
}
