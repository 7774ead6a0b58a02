// The mixin's _config as JSON, for alerts/config.py (dashboards read thresholds from it).
function(lab=false)
  (if lab then import '../lab.libsonnet' else import '../mixin.libsonnet')._config
