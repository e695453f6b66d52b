# Sourced by the GPU scripts: puts the checkout on PYTHONPATH and installs the
# wheels in .whl/ (what the accelerator image lacks) into /tmp/site first.
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
