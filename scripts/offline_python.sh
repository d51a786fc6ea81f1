# Sourced by the GPU scripts: run slimkit from src/ with an interpreter that already has torch
# (an offline GPU image), after installing any wheels found in .whl/ (optuna and its needs).
# Sets PYTHONPATH; expects $py to name the interpreter.
if compgen -G ".whl/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/slimkit-site .whl/*.whl
    export PYTHONPATH="/tmp/slimkit-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
