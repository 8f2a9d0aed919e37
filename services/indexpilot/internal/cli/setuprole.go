package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// setupRoleOptions are the flags of `indexpilot setup-role`.
type setupRoleOptions struct {
	url, role       string
	owners, schemas []string
	connLimit       int
	// control: the database of the URL is also IndexPilot's control
	// database (database_url): create the indexpilot schema owned by the
	// role there, and count the control pool in the connection limit.
	control, dryRun bool
}

// roleRoom is what the role's CONNECTION LIMIT allows on top of
// connections.per_server (docs/connections.md): index builds running at
// once, one dedicated connection each, and one for the CLI; with
// --control-schema also connections.control_pool and the bypass
// listener's connection.
const (
	roleBuildRoom  = 2
	roleCLIRoom    = 1
	roleListenRoom = 1
)

// setupRoleCmd is `indexpilot setup-role`: create or update the
// least-privilege role in one transaction. It never sets a password.
func setupRoleCmd(ctx context.Context, cfgPath string, o setupRoleOptions, limitSet bool, stdout io.Writer) error {
	o, stmts, err := planSetupRole(cfgPath, o, limitSet)
	if err != nil {
		return err
	}
	if o.dryRun {
		fmt.Fprintln(stdout, "begin;")
		for _, s := range stmts {
			fmt.Fprintln(stdout, s+";")
		}
		fmt.Fprintln(stdout, "commit;")
		return nil
	}
	db, err := applySetupRole(ctx, o, stmts)
	if err != nil {
		return err
	}
	r := postgres.Ident(o.role)
	fmt.Fprintf(stdout, "role %s is ready on this server: login, not a superuser, pg_monitor, connection limit %d", r, o.connLimit)
	if len(o.owners) > 0 {
		fmt.Fprintf(stdout, ", member of %s", strings.Join(o.owners, ", "))
	}
	fmt.Fprintf(stdout, "; SELECT on the tables of schema %s in database %s (run it again in each database it scores)", strings.Join(o.schemas, ", "), db)
	if o.control {
		fmt.Fprintf(stdout, "; it owns schema %s there, for the control database", metadata.Schema)
	}
	fmt.Fprintln(stdout, ".")
	fmt.Fprintf(stdout, "It has no password: set one from psql with \\password %s (or ALTER ROLE %s PASSWORD '...'), or authenticate it by certificate or pg_hba.conf.\n", r, r)
	return nil
}

// planSetupRole checks setup-role's options, settles the connection
// limit (from the configuration unless limitSet) and returns the
// statements to run. It needs no database.
func planSetupRole(cfgPath string, o setupRoleOptions, limitSet bool) (setupRoleOptions, []string, error) {
	if o.url == "" {
		o.url = os.Getenv("INDEXPILOT_DATABASE_URL")
	}
	if strings.TrimSpace(o.role) == "" {
		return o, nil, usageError{"setup-role: --role is empty"}
	}
	for _, s := range o.schemas {
		if strings.TrimSpace(s) == "" {
			return o, nil, usageError{"setup-role: --grant-select-schema is empty"}
		}
	}
	for _, w := range o.owners {
		if strings.TrimSpace(w) == "" {
			return o, nil, usageError{"setup-role: --owner is empty"}
		}
		if w == o.role {
			return o, nil, usageError{fmt.Sprintf("setup-role: --owner %s is the role itself", w)}
		}
	}
	if !limitSet {
		env := os.Environ()
		switch {
		case o.url != "":
			env = append(env, "INDEXPILOT_DATABASE_URL="+o.url)
		case o.dryRun && os.Getenv("INDEXPILOT_DATABASE_URL") == "":
			// Only connections.per_server is read: a dry run needs no
			// database, and the configuration may name none.
			env = append(env, "INDEXPILOT_DATABASE_URL=postgres://localhost/dry-run")
		}
		cfg, err := config.Load(cfgPath, env)
		if err != nil {
			return o, nil, err
		}
		o.connLimit = cfg.Connections.PerServer + roleBuildRoom + roleCLIRoom
		if o.control {
			o.connLimit += cfg.Connections.ControlPool + roleListenRoom
		}
	}
	if o.connLimit < 1 {
		return o, nil, usageError{fmt.Sprintf("setup-role: --connection-limit %d is less than 1", o.connLimit)}
	}
	stmts := append(postgres.RoleStatements(o.role, o.connLimit, o.owners), postgres.SelectStatements(o.role, o.schemas, o.owners)...)
	if o.control {
		stmts = append(stmts, postgres.ControlSchemaStatements(o.role, metadata.Schema)...)
	}
	return o, stmts, nil
}

// applySetupRole runs stmts (planSetupRole's) in one transaction on the
// database of o.url, after checkSetupRole, and returns that database's
// name. An error changes nothing.
func applySetupRole(ctx context.Context, o setupRoleOptions, stmts []string) (string, error) {
	if o.url == "" {
		return "", usageError{"setup-role: no database URL: give --url postgres://postgres@host/db or set INDEXPILOT_DATABASE_URL (a superuser, or a role with CREATEROLE)"}
	}
	pc, err := pgx.ParseConfig(o.url)
	if err != nil {
		return "", usageError{"setup-role: the database URL is not a valid connection string (details withheld, it may hold a password)"}
	}
	pc.RuntimeParams["application_name"] = "indexpilot-setup"
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return "", fmt.Errorf("setup-role: connect: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("setup-role: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if err := checkSetupRole(ctx, tx, o); err != nil {
		return "", err
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return "", fmt.Errorf("setup-role: nothing changed: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("setup-role: nothing changed: %w", err)
	}
	return pc.Database, nil
}

// checkSetupRole refuses, before anything changes, what a careful DBA
// would: a connected role that cannot create roles, a --role that is an
// existing superuser (it would lose superuser) and an --owner that is a
// superuser (membership would let the role SET ROLE to it); with
// --control-schema, an indexpilot schema another role owns (its tables
// would stay that role's).
func checkSetupRole(ctx context.Context, tx pgx.Tx, o setupRoleOptions) error {
	var me string
	var super, createRole bool
	if err := tx.QueryRow(ctx, postgres.Marker("setup")+"select current_user, rolsuper, rolcreaterole from pg_roles where rolname = current_user").
		Scan(&me, &super, &createRole); err != nil {
		return fmt.Errorf("setup-role: %w", err)
	}
	if !super && !createRole {
		return fmt.Errorf("setup-role: the connected role %s lacks CREATEROLE (and is not a superuser): connect as a superuser or a role with CREATEROLE", postgres.Ident(me))
	}
	var roleSuper bool
	err := tx.QueryRow(ctx, postgres.Marker("setup")+"select rolsuper from pg_roles where rolname = $1", o.role).Scan(&roleSuper)
	switch {
	case err == nil && roleSuper:
		return fmt.Errorf("setup-role: --role %s is an existing superuser: setup-role would take superuser away from it; name a dedicated role", postgres.Ident(o.role))
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("setup-role: %w", err)
	}
	for _, w := range o.owners {
		var ownerSuper bool
		err := tx.QueryRow(ctx, postgres.Marker("setup")+"select rolsuper from pg_roles where rolname = $1", w).Scan(&ownerSuper)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("setup-role: --owner %s: no such role", postgres.Ident(w))
		case err != nil:
			return fmt.Errorf("setup-role: %w", err)
		case ownerSuper:
			return fmt.Errorf("setup-role: --owner %s is a superuser: membership would let the role become one (SET ROLE); have a non-superuser role own the tables", postgres.Ident(w))
		}
	}
	if o.control {
		var owner string
		err := tx.QueryRow(ctx, postgres.Marker("setup")+"select pg_get_userbyid(nspowner) from pg_namespace where nspname = $1", metadata.Schema).Scan(&owner)
		switch {
		case err == nil && owner != o.role:
			return fmt.Errorf("setup-role: --control-schema: schema %s exists, owned by %s: its tables were created as that role, so keep using it for the control database, or drop the schema (its history with it) and run this again",
				postgres.Ident(metadata.Schema), postgres.Ident(owner))
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("setup-role: %w", err)
		}
	}
	return nil
}
