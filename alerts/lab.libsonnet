// The compressed-time variant for the end-to-end lab (1 s scrape and evaluation interval):
// the same mixin with windows and `for` in seconds, so a lab scenario fires in 30-60 s.
// Only durations (and the per-minute leader-change line, see below) change; every latency,
// ratio and count threshold is the production one.
(import 'mixin.libsonnet') + {
  _config+:: {
    recordingWindow: '10s',
    ruleInterval: '1s',

    membersDown+: { window: '5s', 'for': '15s' },
    insufficientMembers+: { 'for': '10s' },
    noLeader+: { 'for': '5s' },
    highNumberOfLeaderChanges+: { window: '90s', 'for': '10s' },
    failedGRPCRequests+: { window: '10s', warningFor: '15s', criticalFor: '10s' },
    grpcRequestsSlow+: { window: '10s', warningFor: '15s', criticalFor: '15s' },
    memberCommunicationSlow+: { 'for': '15s' },
    failedProposals+: { window: '30s', 'for': '5s' },
    highFsyncDurations+: { 'for': '15s' },
    highCommitDurations+: { 'for': '15s' },
    databaseQuotaLowSpace+: { 'for': '10s' },
    excessiveDatabaseGrowth+: { window: '2m', horizonSeconds: 120, 'for': '10s' },
    databaseHighFragmentationRatio+: { 'for': '10s' },
    walFsyncSlow+: { 'for': '10s' },
    // Time runs about 10x faster: a 30 s window stands for 5 minutes, and "more than one
    // change per minute" becomes more than one per 10 s, i.e. more than 3 changes in 30 s
    // (so a lab rolling restart of 3 members, 3 changes, stays silent).
    leaderChangesTooFrequent+: { window: '30s', perMinute: 6, 'for': '5s' },
    commitApplyLag+: { growthWindow: '20s', 'for': '10s' },
    proposalsPending+: { growthWindow: '20s', 'for': '10s' },
    heartbeatSendFailures+: { window: '20s', 'for': '5s' },
    slowApplies+: { window: '20s', 'for': '5s' },
    slowReadIndexes+: { window: '20s', 'for': '5s' },
    failedReadIndexes+: { window: '20s', 'for': '5s' },
    multipleLeaders+: { 'for': '10s' },
    // 4 voters for ~5 s while a grow or replace passes through them stays silent (3x margin).
    evenNumberOfMembers+: { 'for': '20s' },
    learnerNotCatchingUp+: { 'for': '15s' },
    alarms+: { 'for': '0s' },
    fdsNearLimit+: { 'for': '10s' },
    targetAbsent+: { 'for': '10s' },

    alertmanager+: {
      groupWait: '1s',
      groupInterval: '5s',
      repeatInterval: '1h',
      // The lab replaces this placeholder with its own webhook receiver (see render.py).
      pageURL: 'http://raftmon-lab-webhook.invalid/page',
      ticketURL: 'http://raftmon-lab-webhook.invalid/ticket',
    },
  },
}
