package temporalembed

import (
	"fmt"
	"net"
	"strconv"

	"go.temporal.io/server/common/config"
	tlog "go.temporal.io/server/common/log"
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
		admin := *cfg
		if err := sqltool.DoCreateDatabase(&admin, "postgres", logger); err != nil {
			return nil, nil, fmt.Errorf("temporal: create database %s on %s: %w", s.db, cfg.ConnectAddr, err)
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
