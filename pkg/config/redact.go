package config

import (
	"net/url"
	"reflect"
	"regexp"

	"gopkg.in/yaml.v3"
)

var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// RedactDSN hides the password of a PostgreSQL connection string in either
// the URL or the key=value form. It never fails: text it cannot parse is
// returned with anything that looks like a password masked.
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "REDACTED")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPassword.ReplaceAllString(dsn, "${1}REDACTED")
}

// Redacted returns a copy of c whose secret fields have their passwords
// masked (tagged secret:"true": DSNs) or are replaced whole (secret:"token"),
// fit to print or log.
func (c Config) Redacted() Config {
	out := c
	out.Targets = append([]Target(nil), c.Targets...)
	redactValue(reflect.ValueOf(&out).Elem())
	return out
}

func redactValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := v.Field(i)
			if !t.Field(i).IsExported() {
				continue
			}
			if t.Field(i).Tag.Get("secret") == "true" && f.Kind() == reflect.String {
				f.SetString(RedactDSN(f.String()))
				continue
			}
			if t.Field(i).Tag.Get("secret") == "token" && f.Kind() == reflect.String {
				if f.String() != "" {
					f.SetString("REDACTED")
				}
				continue
			}
			redactValue(f)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			redactValue(v.Index(i))
		}
	}
}

// YAML renders the configuration (call Redacted first to print it).
func (c Config) YAML() ([]byte, error) { return yaml.Marshal(c) }
