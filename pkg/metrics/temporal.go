package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdkmetrics "go.temporal.io/sdk/client"
)

// The Temporal SDK reports its metrics (workflow task latency, activity
// schedule-to-start, sticky cache size, poller counts, ...) through a
// client.MetricsHandler; TemporalHandler turns them into Prometheus series
// named temporal_<name> in Registry, labelled by the SDK's tags.
var temporalSDK = &sdkCollector{}

// TemporalHandler is the MetricsHandler every Temporal client of the process uses.
func TemporalHandler() sdkmetrics.MetricsHandler { return sdkHandler{c: temporalSDK} }

type sdkCollector struct {
	mu       sync.Mutex
	counters map[string]*prometheus.CounterVec
	gauges   map[string]*prometheus.GaugeVec
	timers   map[string]*prometheus.HistogramVec
}

func (c *sdkCollector) Describe(chan<- *prometheus.Desc) {} // unchecked: series appear as the SDK names them

func (c *sdkCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.counters {
		v.Collect(ch)
	}
	for _, v := range c.gauges {
		v.Collect(ch)
	}
	for _, v := range c.timers {
		v.Collect(ch)
	}
}

func promName(name string) string {
	return "temporal_" + strings.NewReplacer("-", "_", ".", "_").Replace(strings.TrimPrefix(name, "temporal_"))
}

// key is a metric's name and label names: one vector per combination.
func key(name string, tags map[string]string) (string, []string) {
	labels := slices.Sorted(maps.Keys(tags))
	return name + "|" + strings.Join(labels, ","), labels
}

func (c *sdkCollector) counter(name string, tags map[string]string) prometheus.Counter {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, labels := key(name, tags)
	v, ok := c.counters[k]
	if !ok {
		if c.counters == nil {
			c.counters = map[string]*prometheus.CounterVec{}
		}
		v = prometheus.NewCounterVec(prometheus.CounterOpts{Name: promName(name) + "_total", Help: "Temporal SDK counter " + name}, labels)
		c.counters[k] = v
	}
	return v.With(tags)
}

func (c *sdkCollector) gauge(name string, tags map[string]string) prometheus.Gauge {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, labels := key(name, tags)
	v, ok := c.gauges[k]
	if !ok {
		if c.gauges == nil {
			c.gauges = map[string]*prometheus.GaugeVec{}
		}
		v = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: promName(name), Help: "Temporal SDK gauge " + name}, labels)
		c.gauges[k] = v
	}
	return v.With(tags)
}

func (c *sdkCollector) timer(name string, tags map[string]string) prometheus.Observer {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, labels := key(name, tags)
	v, ok := c.timers[k]
	if !ok {
		if c.timers == nil {
			c.timers = map[string]*prometheus.HistogramVec{}
		}
		v = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: promName(name) + "_seconds", Help: "Temporal SDK timer " + name, Buckets: latencyBuckets}, labels)
		c.timers[k] = v
	}
	return v.With(tags)
}

type sdkHandler struct {
	c    *sdkCollector
	tags map[string]string
}

func (h sdkHandler) WithTags(tags map[string]string) sdkmetrics.MetricsHandler {
	merged := maps.Clone(h.tags)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, tags)
	return sdkHandler{c: h.c, tags: merged}
}

func (h sdkHandler) tagsOrEmpty() map[string]string {
	if h.tags == nil {
		return map[string]string{}
	}
	return h.tags
}

func (h sdkHandler) Counter(name string) sdkmetrics.MetricsCounter {
	return sdkCounter{h.c.counter(name, h.tagsOrEmpty())}
}

func (h sdkHandler) Gauge(name string) sdkmetrics.MetricsGauge {
	return sdkGauge{h.c.gauge(name, h.tagsOrEmpty())}
}

type sdkGauge struct{ g prometheus.Gauge }

func (g sdkGauge) Update(v float64) { g.g.Set(v) }

func (h sdkHandler) Timer(name string) sdkmetrics.MetricsTimer {
	return sdkTimer{h.c.timer(name, h.tagsOrEmpty())}
}

type sdkCounter struct{ c prometheus.Counter }

func (c sdkCounter) Inc(n int64) {
	if n > 0 {
		c.c.Add(float64(n))
	}
}

type sdkTimer struct{ o prometheus.Observer }

func (t sdkTimer) Record(d time.Duration) { t.o.Observe(d.Seconds()) }
