// Every selector, label, threshold, window, `for` and severity the mixin uses.
// Alert and rule files only read $._config; override any field with `_config+:: {...}`.
// Latency thresholds sit on the etcd histogram bucket edges (powers of two from 1 ms for
// the disk, 0.1 ms for peer RTT) so p99 > threshold means exactly "more than 1 % of the
// observations were slower than the threshold", with no interpolation inside a bucket.
{
  _config+:: {
    // ---- Selectors and labels -------------------------------------------------------------
    // Selects the etcd (or raftmon) scrape targets. etcd's own mixin default, so existing
    // scrape configs and dashboards keep working.
    etcdSelector: 'job=~".*etcd.*"',
    // The label naming a cluster. Cluster-level aggregations keep it (they aggregate only
    // instanceLabels away) and every description prints it. Prometheus target labels, not
    // external labels: rules never see external labels.
    clusterLabel: 'cluster',
    // Labels that identify one member; cluster-level alerts aggregate them away. `pod` is
    // listed so Kubernetes targets do not count as separate clusters (helm-charts#4031).
    instanceLabels: 'instance, pod',
    // The label that names one member in descriptions.
    instanceLabel: 'instance',
    // Labels that identify one member across metric families, for `on(...)` matching.
    memberMatchLabels: '%s, job, %s' % [self.clusterLabel, self.instanceLabel],

    // ---- Runbooks ------------------------------------------------------------------------------
    // Every alert gets runbook_url = runbookURLPattern % alertname. The files live in
    // alerts/runbooks/<alertname>.md; point the pattern at wherever the repository is served.
    runbookURLPattern: 'https://raftmon.example/alerts/runbooks/%s.md',

    // ---- Recording rules -----------------------------------------------------------------------
    // Window of the shared recording rules (p99/mean fsync, commit, RTT, quota, error ratio).
    // Record names carry no window, so dashboards work unchanged on the lab variant.
    recordingWindow: '5m',
    // Evaluation interval of the rule groups; null uses Prometheus' global
    // evaluation_interval. The lab variant sets 1s so its rules work in any Prometheus.
    ruleInterval: null,

    // ---- etcd mixin alerts (names kept, bugs fixed) --------------------------------------------
    membersDown: {
      // Window of the peer send-failure rate (etcd uses 4 x scrape interval).
      window: '2m',
      // Peer send failures per second above which the peer counts as down (etcd's value).
      peerFailuresPerSecond: 0.01,
      // A member down this long leaves the cluster one failure from an outage (reboots are
      // shorter; etcd-io/etcd#12121 was about quick reboots firing it).
      'for': '10m',
      // A 3-member cluster still has quorum with one member down: a ticket, not a page.
      severity: 'warning',
    },
    insufficientMembers: {
      // Fewer than (members + 1) / 2 targets up means no quorum: writes stop.
      'for': '3m',
      // Quorum loss is an outage.
      severity: 'critical',
    },
    noLeader: {
      // An election normally completes within one or two election timeouts (1 s default).
      'for': '1m',
      // A member without a leader cannot serve writes or linearizable reads.
      severity: 'critical',
    },
    highNumberOfLeaderChanges: {
      // Window over which leader changes are counted (etcd's value).
      window: '15m',
      // Fires when the cluster saw more leader changes in the window than this many per
      // member: a rolling restart of N members causes at most N changes (etcd-io/etcd#12080
      // asked for the threshold to scale with the cluster size).
      changesPerMember: 1,
      'for': '5m',
      severity: 'warning',
    },
    failedGRPCRequests: {
      // Window of the gRPC error ratio (also the recording window of the ratio).
      window: '5m',
      // gRPC codes that count as server-side failures (etcd's list).
      failureCodes: 'Unknown|FailedPrecondition|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded',
      // Long-lived streams whose end by the client is reported as a failure code; those ends
      // are not failures (etcd-io/etcd#10289, #13147).
      streamMethods: 'Watch|LeaseKeepAlive',
      // Codes a client-side cancel of those streams surfaces as.
      streamCancelCodes: 'Canceled|Unavailable',
      // Error ratio (0..1) for the warning tier and how long it must hold.
      warningRatio: 0.01,
      warningFor: '10m',
      warningSeverity: 'warning',
      // Error ratio for the critical tier.
      criticalRatio: 0.05,
      criticalFor: '5m',
      criticalSeverity: 'critical',
    },
    grpcRequestsSlow: {
      // Window of the request-duration histograms.
      window: '5m',
      // p99 (s) of etcd_server_request_duration_seconds (buckets 1 ms x 2^n): 256 ms edge.
      requestWarningSeconds: 0.256,
      // p99 (s) for the critical tier: 1.024 s edge (OpenShift relaxed to 1 s).
      requestCriticalSeconds: 1.024,
      // Fallback when only grpc_server_handling_seconds exists (Prometheus DefBuckets).
      grpcWarningSeconds: 0.25,
      grpcCriticalSeconds: 1,
      // gRPC methods left out of the fallback: a defragmentation is slow by design.
      grpcExcludedMethods: 'Defragment',
      warningFor: '10m',
      warningSeverity: 'warning',
      criticalFor: '10m',
      criticalSeverity: 'critical',
    },
    memberCommunicationSlow: {
      // p99 peer RTT (s) above which replication is slow. 102.4 ms is a bucket edge, and the
      // default 1 s election timeout should be >= 10 x RTT (etcd tuning guide).
      p99Seconds: 0.1024,
      'for': '10m',
      severity: 'warning',
    },
    failedProposals: {
      // Window over which failed proposals are counted (etcd used a per-second rate above 5,
      // i.e. thousands of failures, so the alert never fired).
      window: '15m',
      // Failed proposals in the window above which the alert fires.
      maxFailures: 5,
      'for': '5m',
      severity: 'warning',
    },
    highFsyncDurations: {
      // p99 WAL fsync (s) for the warning tier: more than 1 % of fsyncs exceed the default
      // 100 ms heartbeat interval (128 ms bucket edge).
      warningSeconds: 0.128,
      // Critical: more than 1 % of fsyncs take over half the default 1 s election timeout.
      criticalSeconds: 0.512,
      'for': '10m',
      warningSeverity: 'warning',
      criticalSeverity: 'critical',
    },
    highCommitDurations: {
      // p99 backend commit (s) for the warning tier: commits slower than the backend's own
      // 100 ms batch interval (128 ms edge). etcd's FAQ target is 25 ms.
      warningSeconds: 0.128,
      // Critical: commits this slow stall applies and therefore linearizable reads.
      criticalSeconds: 0.512,
      'for': '10m',
      warningSeverity: 'warning',
      criticalSeverity: 'critical',
    },
    databaseQuotaLowSpace: {
      // Database size / quota ratios for the info, warning and critical tiers
      // (cluster-etcd-operator#1464 asked for 65/75/85 %). At 100 % etcd raises NOSPACE.
      infoRatio: 0.65,
      warningRatio: 0.75,
      criticalRatio: 0.85,
      'for': '10m',
      infoSeverity: 'info',
      warningSeverity: 'warning',
      criticalSeverity: 'critical',
    },
    excessiveDatabaseGrowth: {
      // Window of the linear fit and how far ahead (seconds) it predicts (etcd: 4 h and 4 h).
      window: '4h',
      horizonSeconds: 14400,
      'for': '10m',
      severity: 'warning',
    },
    databaseHighFragmentationRatio: {
      // In-use / total ratio below which more than half of the file is free pages.
      inUseRatio: 0.5,
      // ... and only when a defragmentation would give back at least this many bytes
      // (512 MiB, a quarter of the default quota): small databases stop being spammy
      // (kube-prometheus#2470, scality/metalk8s#4054).
      minReclaimableBytes: 536870912,
      'for': '10m',
      severity: 'warning',
    },

    // ---- The course's own thresholds -----------------------------------------------------------
    walFsyncSlow: {
      // Average WAL fsync (s) over recordingWindow above which etcd is "about to have
      // problems" (the course: fsync above 25 ms on average).
      averageSeconds: 0.025,
      'for': '5m',
      severity: 'warning',
    },
    leaderChangesTooFrequent: {
      // Window over which the per-minute leader-change rate is averaged (the "sustained" part):
      // a rolling restart of 3 (or 5) members makes at most 3 (or 5) changes, so it stays at or
      // under 1 per minute over 5 minutes.
      window: '5m',
      // Leader changes per minute, counted once per cluster, above which the course says the
      // network or the disk is in serious trouble.
      perMinute: 1,
      'for': '2m',
      severity: 'critical',
    },

    // ---- Raft health --------------------------------------------------------------------------
    commitApplyLag: {
      // committed - applied entries above which the lag matters (etcd docs: "within a few
      // thousands even under high load").
      minEntries: 5000,
      // Window of deriv(): the lag must also be growing over it.
      growthWindow: '10m',
      'for': '5m',
      severity: 'warning',
    },
    proposalsPending: {
      // Pending proposals above which a growing queue matters.
      minPending: 100,
      // Window of deriv(): the queue must be growing over it (high load or unable to commit).
      growthWindow: '10m',
      'for': '5m',
      severity: 'warning',
    },
    heartbeatSendFailures: {
      // Window and count of late leader heartbeats (> 2 x heartbeat interval, "likely from a
      // slow disk") above which followers are about to start elections.
      window: '10m',
      maxFailures: 5,
      'for': '5m',
      severity: 'warning',
    },
    slowApplies: {
      // Window and count of applies slower than --warning-apply-duration (100 ms).
      window: '10m',
      maxSlow: 10,
      'for': '5m',
      severity: 'warning',
    },
    slowReadIndexes: {
      // Window and count of stale or timed-out ReadIndex responses (slow linearizable reads).
      window: '10m',
      maxSlow: 5,
      'for': '5m',
      severity: 'warning',
    },
    failedReadIndexes: {
      // Window and count of failed ReadIndex requests (linearizable reads that errored).
      window: '10m',
      maxFailed: 5,
      'for': '5m',
      severity: 'warning',
    },
    multipleLeaders: {
      // More than one member reporting is_leader=1 in one cluster for this long: a stale
      // leader that never stepped down (a scrape can overlap an election for a few seconds).
      'for': '2m',
      severity: 'critical',
    },
    evenNumberOfMembers: {
      // An even number of voting members adds cost and no fault tolerance (the course). A
      // member replacement passes through an even count briefly; this long is not brief.
      'for': '1h',
      severity: 'warning',
    },
    learnerNotCatchingUp: {
      // etcd promotes a learner only once its log reaches this share of the leader's
      // committed index (readyPercent in etcd's server); below it, promotion is refused.
      inSyncRatio: 0.9,
      // A snapshot and the log tail take seconds to minutes even for a large store.
      'for': '10m',
      // A learner neither votes nor serves: no outage, but the planned change is stuck.
      severity: 'warning',
    },
    alarms: {
      // The alarm gauge family: etcd 3.5+ exposes etcd_debugging_server_alarms{alarm_type}.
      metric: 'etcd_debugging_server_alarms',
      // NOSPACE makes the cluster refuse writes; CORRUPT stops it serving.
      'for': '0m',
      severity: 'critical',
    },
    fdsNearLimit: {
      // os_fd_used / os_fd_limit ratios for the two tiers (etcd logs a warning at 80 %).
      warningRatio: 0.8,
      criticalRatio: 0.9,
      'for': '10m',
      warningSeverity: 'warning',
      criticalSeverity: 'critical',
    },
    targetAbsent: {
      // No etcd target up anywhere for this long: etcd is down or unmonitored.
      'for': '5m',
      severity: 'critical',
    },

    // ---- Alertmanager -----------------------------------------------------------------------
    alertmanager: {
      // Labels notifications are grouped by (one notification per cluster and alert).
      groupBy: [$._config.clusterLabel, 'alertname'],
      // Wait before the first notification of a group, between updates, and before repeating.
      groupWait: '30s',
      groupInterval: '5m',
      repeatInterval: '4h',
      // Webhook receiving pages and tickets: replace with your pager / ticket integration.
      pageURL: 'http://alert-receiver.invalid/page',
      ticketURL: 'http://alert-receiver.invalid/ticket',
      // Cluster-level alerts whose firing silences member-level alerts in the same cluster.
      clusterOutageAlerts: ['etcdInsufficientMembers'],
      // Member-level alerts whose firing silences the other member-level alerts of the same
      // member only: one member without a leader says nothing about its healthy peers.
      memberOutageAlerts: ['etcdNoLeader'],
    },
  },
}
