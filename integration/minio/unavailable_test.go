package minio

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestUnavailableSkipsOrFails runs TestHelperNoImage in a child process with
// an image that does not exist: without CI it must skip, with CI=true fail.
func TestUnavailableSkipsOrFails(t *testing.T) {
	if os.Getenv("RUBATO_MINIO_HELPER") == "1" {
		t.Skip("helper process")
	}
	for _, ci := range []string{"", "true"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNoImage$", "-test.v")
		cmd.Env = append(os.Environ(), "RUBATO_MINIO_HELPER=1", ImageEnv+"=rubato-test/does-not-exist:0", "CI="+ci)
		out, err := cmd.CombinedOutput()
		text := string(out)
		if ci == "true" {
			if err == nil || !strings.Contains(text, "--- FAIL: TestHelperNoImage") || !strings.Contains(text, "CI=true") {
				t.Fatalf("CI=true: want a failure, got err=%v:\n%s", err, text)
			}
			continue
		}
		if err != nil || !strings.Contains(text, "--- SKIP: TestHelperNoImage") {
			t.Fatalf("no CI: want a skip, got err=%v:\n%s", err, text)
		}
		if !strings.Contains(text, "scripts/") {
			t.Fatalf("skip message does not say which script to run:\n%s", text)
		}
	}
}

func TestHelperNoImage(t *testing.T) {
	if os.Getenv("RUBATO_MINIO_HELPER") != "1" {
		t.Skip("only runs as a child of TestUnavailableSkipsOrFails")
	}
	Start(t)
	t.Fatal("Start returned without a usable image")
}
