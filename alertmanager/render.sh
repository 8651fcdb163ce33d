#!/bin/sh
# Entry point of the alertmanager container (docker-compose.yml).
# Alertmanager does not expand environment variables in its configuration, so this fills each
# ${NAME} placeholder of alertmanager.yml from the environment, writes the result outside the
# read-only mount, and runs alertmanager on it with the container's arguments.
# Secrets are not placeholders: the config's *_file fields read them from /run/secrets.
# Only POSIX sh and awk: the image is busybox-based.
set -eu

template=${AM_CONFIG_TEMPLATE:-/etc/alertmanager/alertmanager.yml}
rendered=${AM_CONFIG_RENDERED:-/tmp/alertmanager.yml}
binary=${AM_BINARY:-/bin/alertmanager}

# A value is pasted inside a double-quoted YAML string: a quote, a backslash or a line break
# would change the document's structure, so such a value is refused instead.
awk '
{
    rest = $0
    out = ""
    while (match(rest, /\$\{[A-Za-z_][A-Za-z0-9_]*\}/)) {
        name = substr(rest, RSTART + 2, RLENGTH - 3)
        if (!(name in ENVIRON)) {
            printf "render.sh: %s is not set (needed on line %d of %s)\n", name, NR, FILENAME > "/dev/stderr"
            failed = 1
        } else if (ENVIRON[name] ~ /["\\\n\r]/) {
            printf "render.sh: %s contains a quote, backslash or line break, which is not allowed\n", name > "/dev/stderr"
            failed = 1
        }
        out = out substr(rest, 1, RSTART - 1) ENVIRON[name]
        rest = substr(rest, RSTART + RLENGTH)
    }
    print out rest
}
END { exit failed }
' "$template" > "$rendered"

exec "$binary" --config.file="$rendered" "$@"
