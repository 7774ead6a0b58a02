// Entry point rendered to out/alertmanager.yml (lab=true: out/lab/alertmanager.yml).
// critical pages, warning opens a ticket, info goes nowhere; one notification per
// cluster and alert name; outages silence the member-level noise they cause (a lost quorum
// in the whole cluster, a member without a leader on that member only).
function(lab=false)
  local c = (if lab then import '../lab.libsonnet' else import '../mixin.libsonnet')._config;
  local am = c.alertmanager;
  local cl = c.clusterLabel;
  local outages = std.join('|', am.clusterOutageAlerts + am.memberOutageAlerts);
  local webhook(url) = { url: url, send_resolved: true };
  {
    route: {
      // Anything without a known severity still reaches a human, as a ticket.
      receiver: 'ticket',
      group_by: am.groupBy,
      group_wait: am.groupWait,
      group_interval: am.groupInterval,
      repeat_interval: am.repeatInterval,
      routes: [
        { matchers: ['severity="critical"'], receiver: 'page' },
        { matchers: ['severity="warning"'], receiver: 'ticket' },
        { matchers: ['severity="info"'], receiver: 'null' },
      ],
    },
    receivers: [
      { name: 'page', webhook_configs: [webhook(am.pageURL)] },
      { name: 'ticket', webhook_configs: [webhook(am.ticketURL)] },
      { name: 'null' },
    ],
    inhibit_rules: [
      // No quorum: peer failures, slow RTT, failed proposals and reads, late heartbeats on
      // the members of that cluster are consequences, not news.
      {
        source_matchers: ['alertname=~"%s"' % std.join('|', am.clusterOutageAlerts)],
        target_matchers: ['scope="member"', 'alertname!~"%s"' % outages],
        equal: [cl],
      },
      // No leader is per member: it silences that member's own noise (failed proposals and
      // reads), not the alerts of its healthy peers (a partitioned minority member must not
      // hide a slow disk on the majority side).
      {
        source_matchers: ['alertname=~"%s"' % std.join('|', am.memberOutageAlerts)],
        target_matchers: ['scope="member"', 'alertname!~"%s"' % outages],
        equal: [cl, c.instanceLabel],
      },
      // Quorum lost: the count of members down is already in the page.
      {
        source_matchers: ['alertname="etcdInsufficientMembers"'],
        target_matchers: ['alertname="etcdMembersDown"'],
        equal: [cl],
      },
      // Tiered alerts (fsync, commit, quota, gRPC, fds): the critical tier silences the lower
      // tiers of the same alert on the same member.
      {
        source_matchers: ['severity="critical"'],
        target_matchers: ['severity=~"warning|info"'],
        equal: ['alertname', cl, c.instanceLabel],
      },
    ],
  }
