module github.com/indexpilot/indexpilot/services/indexpilot

go 1.26.0

require (
	github.com/indexpilot/indexpilot/events v0.0.0
	github.com/indexpilot/indexpilot/pkg v0.0.0
)

require (
	github.com/ThreeDotsLabs/watermill v1.5.1 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/pgx/v5 v5.12.0 // indirect
	github.com/lithammer/shortuuid/v3 v3.0.7 // indirect
	github.com/oklog/ulid v1.3.1 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/text v0.42.0 // indirect
)

replace (
	github.com/indexpilot/indexpilot/events => ../../events
	github.com/indexpilot/indexpilot/pkg => ../../pkg
)
