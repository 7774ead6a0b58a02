// Adds runbook_url to every alerting rule from one pattern, so no alert can forget it.
// Mixed in last: it rewrites the groups the alert files contributed.
{
  local pattern = $._config.runbookURLPattern,
  local withRunbook(rule) =
    if std.objectHas(rule, 'alert')
    then rule { annotations+: { runbook_url: pattern % rule.alert } }
    else rule,

  prometheusAlerts+:: {
    groups: [
      group { rules: std.map(withRunbook, super.rules) }
      for group in super.groups
    ],
  },
}
