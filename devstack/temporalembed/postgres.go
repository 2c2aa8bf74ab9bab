package temporalembed

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"go.temporal.io/server/common/config"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	pgplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/tools/common/schema"
	sqltool "go.temporal.io/server/tools/sql"
)

// Postgres is the PostgreSQL a production Temporal server keeps its state
// in: two databases, one for the history and task queues, one for
// visibility (the listings Démarche's search attributes filter).
type Postgres struct {
	Host     string // default 127.0.0.1
	Port     int    // default 5432
	User     string // default temporal
	Password string
	// Database and VisibilityDatabase (default temporal, temporal_visibility)
	// are created when missing, with the server's own schema tool.
	Database, VisibilityDatabase string
	// MaxConns per database and server process (default 20).
	MaxConns int
	// StartupWait is how long the server keeps trying to reach the database
	// when it starts (default 60s): PostgreSQL that is still starting
	// ("the database system is starting up") or a container started after
	// ours is the ordinary case in compose, Kubernetes and a reboot.
	StartupWait time.Duration
}

// Embedded schema directories of go.temporal.io/server/schema.
const (
	pgSchema           = "postgresql/v12/temporal"
	pgVisibilitySchema = "postgresql/v12/visibility"
)

func (p *Postgres) defaults() {
	if p.Host == "" {
		p.Host = "127.0.0.1"
	}
	if p.Port == 0 {
		p.Port = 5432
	}
	if p.User == "" {
		p.User = "temporal"
	}
	if p.Database == "" {
		p.Database = "temporal"
	}
	if p.VisibilityDatabase == "" {
		p.VisibilityDatabase = "temporal_visibility"
	}
	if p.MaxConns == 0 {
		p.MaxConns = 20
	}
	if p.StartupWait == 0 {
		p.StartupWait = 60 * time.Second
	}
}

// untilReady runs try until it succeeds or wait has passed, pausing a little
// longer each time (100 ms doubling up to 2 s); it returns try's last error.
func untilReady(wait time.Duration, try func() error, retrying func(error)) error {
	deadline := time.Now().Add(wait)
	pause := 100 * time.Millisecond
	for {
		err := try()
		if err == nil || time.Now().Add(pause).After(deadline) {
			return err
		}
		retrying(err)
		time.Sleep(pause)
		pause = min(2*pause, 2*time.Second)
	}
}

func (p *Postgres) sqlConfig(db string) *config.SQL {
	return &config.SQL{
		PluginName:      pgplugin.PluginName,
		DatabaseName:    db,
		ConnectAddr:     net.JoinHostPort(p.Host, strconv.Itoa(p.Port)),
		ConnectProtocol: "tcp",
		User:            p.User,
		Password:        p.Password,
		MaxConns:        p.MaxConns,
		MaxIdleConns:    p.MaxConns,
	}
}

// preparePostgres creates the two databases when missing and brings their
// schemas to the version this server needs, as temporal-sql-tool would
// (setup-schema -v 0.0, then update-schema from the embedded versioned
// directories). Every step is idempotent: a server restarting on its
// database changes nothing, and an upgraded server applies only the new
// versions.
func preparePostgres(p Postgres, logger tlog.Logger) (store, visibility *config.SQL, err error) {
	for _, s := range []struct{ db, schemaName string }{{p.Database, pgSchema}, {p.VisibilityDatabase, pgVisibilitySchema}} {
		cfg := p.sqlConfig(s.db)
		err := untilReady(p.StartupWait, func() error {
			// DoCreateDatabase rewrites the config's database name to the
			// default one it connects to: each attempt needs a fresh copy,
			// or a retry would "create" the postgres database instead.
			admin := *cfg
			return sqltool.DoCreateDatabase(&admin, "postgres", logger)
		}, func(err error) {
			logger.Warn("waiting for PostgreSQL", tag.NewStringTag("address", cfg.ConnectAddr), tag.Error(err))
		})
		if err != nil {
			return nil, nil, fmt.Errorf("temporal: create database %s on %s (tried for %s): %w", s.db, cfg.ConnectAddr, p.StartupWait, err)
		}
		conn, err := sqltool.NewConnection(cfg, logger)
		if err != nil {
			return nil, nil, fmt.Errorf("temporal: connect to database %s on %s: %w", s.db, cfg.ConnectAddr, err)
		}
		err = schema.NewSetupSchemaTask(conn, &schema.SetupConfig{InitialVersion: "0.0"}, logger).Run()
		if err == nil {
			err = schema.NewUpdateSchemaTask(conn, &schema.UpdateConfig{DBName: s.db, SchemaName: s.schemaName}, logger).Run()
		}
		conn.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("temporal: schema of database %s: %w", s.db, err)
		}
		if visibility == nil && store != nil {
			visibility = cfg
		} else {
			store = cfg
		}
	}
	return store, visibility, nil
}
