# Offline validators for the deployment files (tests/deploy): kubectl (Debian's
# kubernetes-client) for kustomize, the Compose specification schema, and KEDA's CRD models (node).
DEPLOY_TOOLS := .cache/deploy
KEDA_MODELS := $(DEPLOY_TOOLS)/node_modules/@kubernetes-models/keda/package.json

test-deps: deploy-tools

.PHONY: deploy-tools
deploy-tools: $(DEPLOY_TOOLS)/compose_spec.json $(KEDA_MODELS)
	@# Debian's kubernetes-client: its kubectl renders kustomize (the k8s/ files keep to syntax it and kustomize v5 share).
	@command -v kubectl >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq kubernetes-client; }

# The schema ships inside docker-compose 1.29's wheel (the last Python release).
$(DEPLOY_TOOLS)/compose_spec.json:
	mkdir -p $(DEPLOY_TOOLS)/wheel
	@# The system Python, not the venv: `make test-latest` runs this without the main venv.
	$(PYTHON) -m pip download -q --no-deps -d $(DEPLOY_TOOLS)/wheel docker-compose==1.29.2
	$(PYTHON) -c "import zipfile,glob,sys; z=zipfile.ZipFile(glob.glob('$(DEPLOY_TOOLS)/wheel/docker_compose-*.whl')[0]); sys.stdout.buffer.write(z.read('compose/config/compose_spec.json'))" > $@.tmp
	mv $@.tmp $@

$(KEDA_MODELS):
	command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	mkdir -p $(DEPLOY_TOOLS)
	cd $(DEPLOY_TOOLS) && npm install --silent --no-audit --no-fund --prefix . @kubernetes-models/keda@2.0.0
