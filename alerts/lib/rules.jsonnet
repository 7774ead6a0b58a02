// Entry point rendered to out/prometheus_rules.yaml (lab=true: out/lab/).
function(lab=false)
  (if lab then import '../lab.libsonnet' else import '../mixin.libsonnet').prometheusRules
