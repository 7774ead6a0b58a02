// Small builders shared by the alert files, so every alert has the same shape:
// severity and scope labels, a static summary and a templated description.
{
  // A number as PromQL text: '%s' prints 0.025 as 0.025000000000000001 (17 digits); 12
  // significant digits print every threshold here exactly as written in _config.
  num(x):: '%.12g' % x,
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
