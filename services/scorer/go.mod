module github.com/indexpilot/indexpilot/services/scorer

go 1.26.0

require (
	github.com/indexpilot/indexpilot/events v0.0.0
	github.com/indexpilot/indexpilot/pkg v0.0.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/pgx/v5 v5.12.0 // indirect
	github.com/pganalyze/pg_query_go/v6 v6.2.5 // indirect
	github.com/stretchr/testify v1.11.1 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/protobuf v1.33.0 // indirect
)

replace (
	github.com/indexpilot/indexpilot/events => ../../events
	github.com/indexpilot/indexpilot/pkg => ../../pkg
)
