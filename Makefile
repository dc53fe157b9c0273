.PHONY: build test lint check bench deb
build:
	go build -buildvcs=auto -o vmpooler .
test:
	go test -race ./...
lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet ./...
	go tool staticcheck ./...
check:
	bash .ci/run
bench:
	go test -run x -bench . -benchmem ./store/ ./pool/ ./httpapi/ ./vsphere/
deb:
	bash deploy/build-deb.sh
