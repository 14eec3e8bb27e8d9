import os,re,sys,shutil
base=os.getcwd()
dirs=['data-plane-api','xds','protoc-gen-validate','googleapis','opentelemetry-proto','cel-spec/proto','client_model','ratelimit']
roots=sys.argv[2:]
out=sys.argv[1]
seen=set();stack=list(roots)
while stack:
    f=stack.pop()
    if f in seen or f.startswith('google/protobuf/'): continue
    src=None
    for d in dirs:
        p=os.path.join(base,d,f)
        if os.path.exists(p): src=p;break
    if not src: print('MISSING',f);continue
    seen.add(f)
    dst=os.path.join(out,f);os.makedirs(os.path.dirname(dst),exist_ok=True);shutil.copy(src,dst)
    for m in re.finditer(r'^import\s+(?:public\s+)?"([^"]+)"',open(src).read(),re.M): stack.append(m.group(1))
print(len(seen))
