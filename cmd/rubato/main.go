// Command rubato runs Rubato: an object-storage trace backend compatible
// with Grafana Tempo. See the README for the two commands that matter.
package main

import (
	"os"

	"github.com/rubatodb/rubato/cmd/rubato/app"
)

func main() { os.Exit(app.Main(os.Args[1:])) }
