// The raftmon etcd mixin: _config, prometheusAlerts and prometheusRules.
// Use it like any monitoring mixin: (import 'mixin.libsonnet') + { _config+:: { ... } }.
(import 'config.libsonnet')
+ (import 'rules/rules.libsonnet')
+ (import 'alerts/etcd.libsonnet')
+ (import 'alerts/course.libsonnet')
+ (import 'alerts/raft.libsonnet')
+ (import 'lib/add-runbook-links.libsonnet')
