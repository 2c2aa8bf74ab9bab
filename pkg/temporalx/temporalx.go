// Package temporalx holds what every Démarche process shares about Temporal:
// the namespace, the custom search attributes and how to dial a client.
package temporalx

import (
	"context"
	"fmt"
	"net"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/tracing"
)

// DefaultNamespace is where crises run.
const DefaultNamespace = "demarche"

// Custom search attributes kept current by the crisis workflow, so visibility
// queries (`demarche crisis list`, `temporal workflow list --query ...`) filter crises.
var (
	SAStage           = temporal.NewSearchAttributeKeyKeyword("DemarcheStage")
	SACountry         = temporal.NewSearchAttributeKeyKeyword("DemarcheCountry")
	SARegion          = temporal.NewSearchAttributeKeyKeyword("DemarcheRegion")
	SACrisisType      = temporal.NewSearchAttributeKeyKeyword("DemarcheCrisisType")
	SASeverity        = temporal.NewSearchAttributeKeyInt64("DemarcheSeverity")
	SAConfidentiality = temporal.NewSearchAttributeKeyKeyword("DemarcheConfidentiality")
	SADrill           = temporal.NewSearchAttributeKeyBool("DemarcheDrill")
	// SAActiveStages lists every stage running now: with parallel stages a
	// crisis is in several at once.
	SAActiveStages = temporal.NewSearchAttributeKeyKeywordList("DemarcheActiveStages")
	// SASharedWith lists the partner organisations a crisis is shared with, so
	// a partner's listing is one visibility query.
	SASharedWith = temporal.NewSearchAttributeKeyKeywordList("DemarcheSharedWith")
	// SALeadPresence is the field presence leading a crisis on the ground,
	// so a field officer's listing is one visibility query.
	SALeadPresence = temporal.NewSearchAttributeKeyKeyword("DemarcheLeadPresence")
)

// SearchAttributes lists the custom search attributes and their types, for
// registering them on a server.
func SearchAttributes() map[string]enums.IndexedValueType {
	return map[string]enums.IndexedValueType{
		SAStage.GetName():           enums.INDEXED_VALUE_TYPE_KEYWORD,
		SACountry.GetName():         enums.INDEXED_VALUE_TYPE_KEYWORD,
		SARegion.GetName():          enums.INDEXED_VALUE_TYPE_KEYWORD,
		SACrisisType.GetName():      enums.INDEXED_VALUE_TYPE_KEYWORD,
		SASeverity.GetName():        enums.INDEXED_VALUE_TYPE_INT,
		SAConfidentiality.GetName(): enums.INDEXED_VALUE_TYPE_KEYWORD,
		SADrill.GetName():           enums.INDEXED_VALUE_TYPE_BOOL,
		SAActiveStages.GetName():    enums.INDEXED_VALUE_TYPE_KEYWORD_LIST,
		SASharedWith.GetName():      enums.INDEXED_VALUE_TYPE_KEYWORD_LIST,
		SALeadPresence.GetName():    enums.INDEXED_VALUE_TYPE_KEYWORD,
	}
}

// EnsureSearchAttributes adds the custom search attributes a namespace lacks
// (a data folder or cluster set up before an attribute existed).
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	_, err := AddMissingSearchAttributes(ctx, c, namespace)
	return err
}

// AddMissingSearchAttributes is EnsureSearchAttributes, saying how many it added.
func AddMissingSearchAttributes(ctx context.Context, c client.Client, namespace string) (int, error) {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return 0, fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	missing := map[string]enums.IndexedValueType{}
	for name, t := range SearchAttributes() {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = t
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing}); err != nil {
		return 0, fmt.Errorf("add search attributes to %s: %w", namespace, err)
	}
	return len(missing), nil
}

// Dial connects to a Temporal frontend and checks it answers, so a wrong address
// fails here with a clear message instead of at the first call. It presents
// the API key of its identity (As; see Credentials, SetCredentialsFor,
// SetDefaultCredentials), the process's mTLS credentials (SetDefaultTLS, else the environment: see
// TLSFiles) and encrypts payloads with the address's or the process's codec
// keyring (SetCodecFor, SetDefaultCodec), unless an option says otherwise.
func Dial(ctx context.Context, hostPort, namespace string, logger *zap.Logger, opts ...DialOption) (client.Client, error) {
	var o dialOptions
	for _, opt := range opts {
		opt(&o)
	}
	files := processTLS()
	if o.tls != nil {
		files = *o.tls
	}
	tlsConf, err := files.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", hostPort, err)
	}
	if tlsConf != nil && tlsConf.ServerName == "" {
		if host, _, err := net.SplitHostPort(hostPort); err == nil {
			tlsConf.ServerName = host
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tracer, err := tracing.TemporalInterceptor(o.identity)
	if err != nil {
		return nil, fmt.Errorf("temporal tracing: %w", err)
	}
	var dialOpts []grpc.DialOption
	codec := CodecFor(hostPort)
	if o.codecSet {
		codec = o.codec
	}
	if codec != nil {
		chain, err := payloadcodec.Interceptors(codec)
		if err != nil {
			return nil, fmt.Errorf("temporal payload codec: %w", err)
		}
		dialOpts = append(dialOpts, grpc.WithChainUnaryInterceptor(chain...))
	}
	var key string
	if o.apiKey != nil {
		key = *o.apiKey
	} else if key, err = KeyFor(hostPort, o.identity); err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", hostPort, err)
	}
	var creds client.Credentials
	if key != "" {
		creds = client.NewAPIKeyStaticCredentials(key)
	}
	c, err := client.DialContext(ctx, client.Options{
		// Trace context crosses into workflows and activities and back out.
		Interceptors: []interceptor.ClientInterceptor{tracer},
		HostPort:     hostPort,
		Namespace:    namespace,
		Logger:       SDKLogger(logger),
		// The SDK's metrics (task latencies, sticky cache, pollers) join
		// Démarche's in the process's /metrics.
		MetricsHandler: metrics.TemporalHandler(),
		// The API key goes as "Authorization: Bearer <key>"; over TLS
		// when the files say so, else in plaintext to a loopback frontend
		// (the SDK would otherwise turn TLS on for a key).
		Credentials:       creds,
		ConnectionOptions: client.ConnectionOptions{TLS: tlsConf, TLSDisabled: tlsConf == nil, DialOptions: dialOpts},
	})
	if err != nil {
		if key == "" {
			who := o.identity
			if who == "" {
				who = "this process"
			}
			return nil, fmt.Errorf("connect to Temporal at %s (namespace %s) as %s without a credential (%w: give --temporal-key-file or env %s, or %s with <identity>.key files): %w",
				hostPort, namespace, who, ErrNoCredential, EnvKeyFile, EnvCredentialsDir, err)
		}
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s) as %s: %w", hostPort, namespace, KeyIdentity(key), err)
	}
	return c, nil
}

// SDKLogger adapts zap to the Temporal SDK's logger interface.
func SDKLogger(l *zap.Logger) log.Logger { return sdkLogger{l.Named("temporal").Sugar()} }

type sdkLogger struct{ s *zap.SugaredLogger }

func (l sdkLogger) Debug(msg string, kv ...any) { l.s.Debugw(msg, kv...) }
func (l sdkLogger) Info(msg string, kv ...any)  { l.s.Infow(msg, kv...) }
func (l sdkLogger) Warn(msg string, kv ...any)  { l.s.Warnw(msg, kv...) }
func (l sdkLogger) Error(msg string, kv ...any) { l.s.Errorw(msg, kv...) }
