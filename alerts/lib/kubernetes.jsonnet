// Entry point rendered to out/kubernetes/ (`raftmon mixin`): the mixin as prometheus-operator
// resources, the way kube-prometheus-stack installs monitoring. One field per output file.
// The rules and the routing are the ones of out/prometheus_*.yaml and out/alertmanager.yml,
// taken from the same objects, so the plain files and the resources cannot drift apart.
local mixin = import '../mixin.libsonnet';
local routing = (import 'alertmanager.jsonnet')(false);
local c = mixin._config;

local k8s = {
  // Every resource's name: `kubectl get prometheusrules,servicemonitors | grep raftmon`.
  name: 'raftmon-etcd',
  labels: {
    'app.kubernetes.io/name': 'raftmon-etcd',
    'app.kubernetes.io/part-of': 'raftmon',
    'app.kubernetes.io/component': 'monitoring',
  },
  // kube-prometheus-stack's Prometheus and Alertmanager select resources labelled with the
  // Helm release's name (ruleSelector, serviceMonitorSelector, podMonitorSelector,
  // alertmanagerConfigSelector). Change it if the release is not called kube-prometheus-stack.
  selectorLabels: { release: 'kube-prometheus-stack' },
  // The etcd members' Service and pods carry this label; its app.kubernetes.io/instance label
  // names the etcd cluster and becomes the mixin's cluster label.
  memberSelector: { 'app.kubernetes.io/name': 'etcd' },
  clusterSourceLabel: 'app_kubernetes_io_instance',
  // etcd serves plain-HTTP metrics on --listen-metrics-urls (port 2381 by convention), named
  // `metrics` on the Service and the container; /metrics on the client port needs TLS when
  // client-cert-auth is on (the -tls variant).
  metricsPort: 'metrics',
  clientPort: 'client',
  // The job value every target gets: the mixin selects c.etcdSelector (job=~".*etcd.*").
  job: 'etcd',
  scrapeInterval: '15s',
  // The TLS variant reads the client certificate Prometheus presents from this Secret
  // (keys as cert-manager writes them).
  tlsSecret: 'etcd-metrics-client-tls',
  tlsServerName: 'etcd',
};

local metadata(extraLabels={}) = {
  name: k8s.name,
  labels: k8s.labels + k8s.selectorLabels + extraLabels,
};

// The cluster label from the members' instance label, and job as the mixin selects it.
local relabelings(role) = [
  {
    sourceLabels: ['__meta_kubernetes_%s_label_%s' % [role, k8s.clusterSourceLabel]],
    targetLabel: c.clusterLabel,
    action: 'replace',
  },
  { targetLabel: 'job', replacement: k8s.job, action: 'replace' },
];

// ---- Alertmanager routing: alertmanager.yml's snake_case -> AlertmanagerConfig's camelCase ----
// `name<op>"value"` -> {name, matchType, value}; our matchers never escape a quote.
local parseMatcher(s) =
  local quotes = std.findSubstr('"', s);
  assert std.length(quotes) == 2 && quotes[1] == std.length(s) - 1 :
         'matcher %s: expected name<op>"value"' % s;
  local head = std.substr(s, 0, quotes[0]);
  local tail2 = std.substr(head, std.length(head) - 2, 2);
  local op = if std.member(['!~', '=~', '!='], tail2) then tail2 else '=';
  assert std.endsWith(head, op) : 'matcher %s: no operator' % s;
  {
    name: std.stripChars(std.substr(head, 0, std.length(head) - std.length(op)), ' '),
    matchType: op,
    value: std.substr(s, quotes[0] + 1, quotes[1] - quotes[0] - 1),
  };

// Field names that are not the camelCase of their alertmanager.yml spelling.
local renamed = { source_matchers: 'sourceMatch', target_matchers: 'targetMatch' };
local matcherLists = ['matchers', 'source_matchers', 'target_matchers'];
local camel(key) =
  local words = std.split(key, '_');
  words[0] + std.join('', [std.asciiUpper(w[0]) + std.substr(w, 1, std.length(w) - 1) for w in words[1:]]);

local toCRD(value) =
  if std.isObject(value) then {
    [if std.objectHas(renamed, k) then renamed[k] else camel(k)]:
      if std.member(matcherLists, k) then std.map(parseMatcher, value[k]) else toCRD(value[k])
    for k in std.objectFields(value)
  }
  else if std.isArray(value) then std.map(toCRD, value)
  else value;

// A function like every entry point; there is no lab variant of the Kubernetes resources.
function(lab=false)
  assert !lab : 'out/kubernetes/ has no lab variant';
  {
    'prometheusrule.yaml': {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: metadata(),
      spec: { groups: mixin.prometheusRules.groups + mixin.prometheusAlerts.groups },
    },

    'alertmanagerconfig.yaml': {
      apiVersion: 'monitoring.coreos.com/v1alpha1',
      kind: 'AlertmanagerConfig',
      metadata: metadata(),
      spec: toCRD(routing),
    },

    // Scrape examples: apply ONE of them (both would scrape every member twice).
    'scrape/servicemonitor.yaml': {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: metadata(),
      spec: {
        selector: { matchLabels: k8s.memberSelector },
        endpoints: [{
          port: k8s.metricsPort,
          path: '/metrics',
          scheme: 'http',
          interval: k8s.scrapeInterval,
          relabelings: relabelings('service'),
        }],
      },
    },

    'scrape/servicemonitor-tls.yaml': self['scrape/servicemonitor.yaml'] {
      spec+: {
        endpoints: [super.endpoints[0] {
          port: k8s.clientPort,
          scheme: 'https',
          tlsConfig: {
            ca: { secret: { name: k8s.tlsSecret, key: 'ca.crt' } },
            cert: { secret: { name: k8s.tlsSecret, key: 'tls.crt' } },
            keySecret: { name: k8s.tlsSecret, key: 'tls.key' },
            serverName: k8s.tlsServerName,
          },
        }],
      },
    },

    'scrape/podmonitor.yaml': {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: metadata(),
      spec: {
        selector: { matchLabels: k8s.memberSelector },
        podMetricsEndpoints: [{
          port: k8s.metricsPort,
          path: '/metrics',
          scheme: 'http',
          interval: k8s.scrapeInterval,
          relabelings: relabelings('pod'),
        }],
      },
    },
  }
