# Two entry points from a fresh clone: `make serve` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: install serve test lint swagger-ui uplot
install: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/editgate serve

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Three processes (pytest-xdist): most tests wait on servers and sockets, so even two cores overlap them.
test: lint
	$(VENV)/bin/pytest -q -n 3

# Swagger UI's assets ship inside the package (the docs page works offline). Refresh them from npm, pinned:
SWAGGER_UI_VERSION ?= 5.35.0
SWAGGER_UI_DIR := router/static/swagger-ui
swagger-ui:
	rm -rf $(SWAGGER_UI_DIR).tmp && mkdir -p $(SWAGGER_UI_DIR).tmp
	cd $(SWAGGER_UI_DIR).tmp && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) | xargs tar xzf
	for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui-standalone-preset.js \
	  swagger-ui-standalone-preset.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE; do \
	  cp $(SWAGGER_UI_DIR).tmp/package/$$f $(SWAGGER_UI_DIR)/; done
	rm -rf $(SWAGGER_UI_DIR).tmp
	@echo "now update the version and integrity in $(SWAGGER_UI_DIR)/SOURCE.txt"

# The console's chart library ships inside the package too (the console works offline). Refresh it from npm, pinned:
UPLOT_VERSION ?= 1.6.32
UPLOT_DIR := router/console/static/vendor/uplot
uplot:
	rm -rf $(UPLOT_DIR).tmp && mkdir -p $(UPLOT_DIR).tmp
	cd $(UPLOT_DIR).tmp && npm pack --silent uplot@$(UPLOT_VERSION) | xargs tar xzf
	cp $(UPLOT_DIR).tmp/package/dist/uPlot.esm.js $(UPLOT_DIR).tmp/package/dist/uPlot.min.css \
	  $(UPLOT_DIR).tmp/package/LICENSE $(UPLOT_DIR)/
	rm -rf $(UPLOT_DIR).tmp
	@echo "now update the version and integrity in $(UPLOT_DIR)/SOURCE.txt"
