# Sourced by the GPU scripts: run slimkit from src/ with an interpreter that already has torch
# (an offline GPU image), after installing any wheels found in .whl/ (optuna and its needs).
# Sets PYTHONPATH; expects $py to name the interpreter. The wheels are installed once per
# machine, so that two scripts started side by side do not install over each other.
site=/tmp/slimkit-site
if compgen -G ".whl/*.whl" >/dev/null && [ ! -f "$site/.installed" ]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl
    touch "$site/.installed"
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
